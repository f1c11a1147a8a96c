"""Block Kit builders: pure functions from requests to Slack message text and blocks."""
