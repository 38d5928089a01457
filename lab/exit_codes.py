"""The exit codes of `scaling-lab` (listed in its --help), shared by every command.

They live in lab, the package everything else may import: `lab.cli.train` returns them, the
sweep commands and the dispatcher (`experiments.main`) too. 74 and 75 are sysexits.h's
EX_IOERR and EX_TEMPFAIL: the run can go on once the cause is gone.
"""

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran, and something it did failed (a run raised, a check said no)
EXIT_USAGE = 2  # bad input: a config, a path, a table; nothing was trained or written
EXIT_DIVERGED = 3  # `train`: the run diverged; recorded in result.json
EXIT_NO_SPACE = 74  # a disk filled up: the last checkpoint stays; free space and resume
EXIT_PREEMPTED = 75  # SIGTERM: the checkpoint is saved, run the same command to resume
EXIT_INTERRUPTED = 130  # Ctrl-C
