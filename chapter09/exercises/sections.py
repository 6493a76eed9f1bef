"""The sections that have checked exercises: the one list the checker, its messages and the command line read."""
SECTIONS = ("9.1", "9.2", "9.3", "9.4", "9.5", "9.6", "9.7")
