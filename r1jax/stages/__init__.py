"""Stage runners: each reads the config and runs one stage of the R1 pipeline."""
