from simulator.cli.app import app

app(prog_name="intake-sim")
