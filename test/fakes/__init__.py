"""Contract fakes of libraries that cannot run on the CI machine (tests only)."""
