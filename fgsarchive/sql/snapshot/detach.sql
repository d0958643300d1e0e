-- Close an attached snapshot file (flushes it before it is renamed over the public file).
DETACH {alias}
