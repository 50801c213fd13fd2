"""Connections to the outside world: the data mart (PostgreSQL) and the CMDB raw zone (MongoDB)."""
