"""tumorseg's Hydra config groups, installed as the package tumorseg.conf (read as pkg://tumorseg.conf)."""
