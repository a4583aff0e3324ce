import sys

from rlx.core import interrupts

interrupts.install_for_process()  # before anything heavy is imported
try:
    from rlx.cli import main

    code = main()
except interrupts.Interrupted as stopped:  # a second Ctrl-C before main's own handling
    code = interrupts.stopped_before_start(stopped)
sys.exit(code)
