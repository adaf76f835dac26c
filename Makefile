# The two commands of the README. Each does all set-up itself.
.PHONY: serve demo test soak bench

demo:
	@scripts/bootstrap runtime
	switchboard demo

serve:
	@scripts/bootstrap runtime
	switchboard serve

test:
	@scripts/bootstrap test
	python3 -m pytest -q

soak:
	@scripts/bootstrap test
	python3 -m pytest -q -m soak

bench:
	@scripts/bootstrap runtime
	python3 bench/forwarding.py
