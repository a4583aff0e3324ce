"""The run machinery: the host driver, run directories, members runs, checkpoints, progress."""
