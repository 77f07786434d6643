.PHONY: demo test build setup

# Installs what is missing, then runs the local demo migration.
demo: setup
	./bin/dbferry demo

# Installs what is missing, then runs every test.
test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh

build:
	bash scripts/build.sh
