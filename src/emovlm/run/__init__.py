"""The run store, response cache and executors."""
