"""Test and demo glue: the loopback MAST/EDB/GSC server (``mast_server``) and the whole real path
run against it from the simulator's output (``serve``). The stages never import this package."""
