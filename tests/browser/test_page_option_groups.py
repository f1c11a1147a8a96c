"""The page shows a select's option groups as Slack does, labelled, every option choosable, and an input's hint:
the request form past 100 pairs, opened in a local Slack with no jit behind it."""

from __future__ import annotations

from typing import Any

from bot.blocks.request_modal import build_request_modal
from bot.core.policy import Resource, Role, Rule
from tests.support.slack import SIGNING_SECRET, local_slack


def test_the_page_shows_option_groups_and_hints(browser: Any) -> None:
    from playwright.sync_api import expect

    three = {r: Role(r) for r in ('read', 'deploy', 'admin')}
    apps = [Resource(name=f'app-{i:02}', provider='webhook', roles=three) for i in range(47)]
    apps.append(Resource(name='demo-app', provider='webhook', roles={'read': Role('read')}))
    rows = [
        (res, role, Rule(name='r', require_reason=res.name == 'demo-app'))
        for res in apps
        for role in res.roles.values()
    ]
    with local_slack(SIGNING_SECRET) as slack:
        slack.workspace.open_view('U0ALEX', build_request_modal(rows))
        page = browser.new_page()
        page.set_default_timeout(10_000)
        problems: list[str] = []
        page.on('pageerror', lambda error: problems.append(str(error)))
        page.goto(slack.base_url)
        page.select_option('#user', label='alex (Alex Rivera)')
        expect(page.locator('#modal h3')).to_have_text('Request access')
        groups = page.locator('#in-access optgroup')
        expect(groups).to_have_count(48)
        expect(groups.last).to_have_attribute('label', 'demo-app')
        expect(page.locator('#in-access option[value]:not([value=""])')).to_have_count(142)
        page.select_option('#in-access', 'demo-app:read')
        expect(page.locator('#in-access')).to_have_value('demo-app:read')
        expect(page.locator('#modal .hint')).to_have_text('Required for demo-app · read.')
        expect(page.locator('#modal')).to_contain_text(
            'Reason (required for some choices; approvers see it) (optional)'
        )
        assert not problems, problems
