"""strahl's Moonlight driver package (entry point: ../driver.py; subcommands: cli.py).

Contract: importing the package imports nothing else; each subcommand module imports the
Moonlight core (moonlight_python), PyAV or numpy only when it runs.
"""
