-- Make an attached database the default one of the connection.
USE {database}
