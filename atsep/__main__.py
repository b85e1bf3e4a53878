from atsep.cli import run

run()
