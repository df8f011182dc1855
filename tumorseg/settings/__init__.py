"""Settings: a command's options and its run dir. The one rule set every command's options pass (rules) and the
run dir's checks before Hydra writes into it: writable, one owner, what resume= may continue (run_dir).
May import: every stage below it, tumorseg.errors (which calls rules.check_config at every command's start).
"""
