from dnahnet_cli.main import entry

entry()
