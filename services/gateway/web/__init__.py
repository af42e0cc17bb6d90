"""The web interface: login, explore, model pages with a playground, prediction pages, dashboard, account."""
