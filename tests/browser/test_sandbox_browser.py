"""`jit sandbox` in a real browser: what a person trying jit sees, asserted on the page's DOM.

Headless Chromium opens the URL `python -m bot sandbox` prints and does what the README's quick start says:
alex types `/jit request demo-app read 20s trying jit` and reads the ephemeral answer; sam finds the approval DM
and presses Approve; the demo webhook panel shows the grant, alex's DM says "Granted", and 20 s later the
revoke shows in both. Every assertion reads the page (Playwright's `expect` retries until its timeout), never
Redis, so a page that renders wrong fails even when jit itself is right.

While the grant runs alex opens `/jit`'s form, finds nothing preselected, and cancels it. The run ends with a
1280x800 screenshot of alex's DM with the whole lifecycle; `JIT_SANDBOX_SCREENSHOT=PATH` also copies it to PATH
(the README's `docs/sandbox.png` is made with `JIT_SANDBOX_SCREENSHOT=docs/sandbox.png python -m pytest tests/browser`).

The second test approves from email, as a newcomer would in the sandbox: alex asks for `demo-app deploy` (two
steps, asked in Slack, by email and in Teams), sam approves in Slack, sec opens the Inbox pane, reads the email in
its sandboxed frame, follows its Approve link to jit's page in a new tab and confirms there; the demo webhook and
alex's DM show the grant, and the Teams pane shows a card per step and the outcome, the reason's markup as text.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.redis]

REQUEST = '/jit request demo-app read 20s trying jit'
WIDTH, HEIGHT = 1280, 800
#: Seconds for what follows a click (the bot's answer, the worker's grant); generous for a loaded CI machine.
STEP = 15.0
#: Seconds from the grant until the revoke shows: the 20 s grant, the revoke job or a 1 s sweep, a 1 s poll.
REVOKE = 40.0


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; `AssertionError` when the file is no PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR', f'{path} is not a PNG'
    width, height = struct.unpack('>II', head[16:24])
    return int(width), int(height)


def test_request_approve_grant_and_revoke_in_the_browser(browser: Any, sandbox: str, tmp_path: Path) -> None:
    """alex asks, sam approves with the button, the webhook grants, the revoke follows: all visible on the page."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={'width': WIDTH, 'height': HEIGHT})
    page.set_default_timeout(STEP * 1000)
    problems: list[str] = []
    page.on('pageerror', lambda error: problems.append(f'page error: {error}'))
    page.on('console', lambda msg: problems.append(f'console {msg.type}: {msg.text}') if msg.type == 'error' else None)
    step = 'opening the page'
    try:
        page.goto(sandbox)
        expect(page).to_have_title('jit sandbox')
        messages, ack = page.locator('#msgs'), page.locator('#ack')
        grants, calls = page.locator('#grants'), page.locator('#calls')

        step = 'alex files the request'
        page.select_option('#user', label='alex (Alex Rivera)')
        expect(page.locator('#head')).to_have_text('jit (DM)')
        page.fill('#text', REQUEST)
        page.press('#text', 'Enter')
        answer = messages.locator('.msg', has=page.locator('.eph', has_text='only visible to you'))
        expect(answer.filter(has_text='Filed')).to_have_count(1, timeout=STEP * 1000)
        request_id = answer.locator('code').first.inner_text()
        assert re.fullmatch(r'r-[0-9a-z]+', request_id), f'no request id in the answer: {answer.inner_text()!r}'
        expect(answer).to_contain_text(f'Filed {request_id}: read on demo-app for 20s')
        expect(page.locator('#text')).to_have_value('')
        expect(ack).to_have_text('')  # the answer is shown once, in the DM, not again in the status line
        expect(answer.first).not_to_contain_text(':inbox_tray:')  # shortcodes are shown as emoji

        step = 'alex asks for help from the audit channel'
        page.locator('#chans .chan', has_text='#jit-audit').click()
        expect(page.locator('#head')).to_have_text('#jit-audit')
        page.fill('#text', '/jit help')
        page.press('#text', 'Enter')
        expect(page.locator('#head')).to_have_text('jit (DM)')  # where the answer is
        expect(page.get_by_text('just-in-time access. Usage:')).to_have_count(1)
        expect(ack).to_have_text('')
        expect(answer.filter(has_text='/jit request demo-app read 30m debugging INC-4711')).to_have_count(1)
        expect(page.get_by_text('prod-db')).to_have_count(0)  # examples the sandbox can run

        step = "sam finds the approval DM and presses Approve"
        page.select_option('#user', label='sam (Sam Lead)')
        expect(page.locator('#head')).to_have_text('jit (DM)')
        expect(ack).to_have_text('')  # alex's answer is not sam's
        approval = messages.locator('.msg', has_text=f'request {request_id}')
        # The approval DM comes from the worker's notify process, which starts last and at a lower priority: on a
        # loaded machine (CI running beside other work) it can be seconds behind the request.
        expect(approval).to_have_count(1, timeout=STEP * 1000)
        expect(approval).to_contain_text('@alex asks for read on demo-app for 20s')
        expect(approval).to_contain_text('Reason: trying jit')
        expect(answer.filter(has_text=request_id)).to_have_count(0)  # alex's ephemeral stays alex's
        approval.get_by_role('button', name='Approve').click()
        expect(approval).to_contain_text('Approved by @sam')
        expect(approval.get_by_role('button')).to_have_count(0)  # decided: the buttons are gone
        expect(approval).to_contain_text('(edited)')

        step = 'the demo webhook shows the grant'
        grant = grants.locator('.grant', has_text=request_id)
        expect(grant).to_contain_text('demo-app / read for alex@example.com')
        expect(calls).to_contain_text(f'grant {request_id} \u2192 200')

        step = "sam reads the audit channel"
        page.locator('#chans .chan', has_text='#jit-audit').click()
        expect(page.locator('#head')).to_have_text('#jit-audit')
        for event in ('request.created by @alex', 'request.approved by @sam', 'grant.active by jit'):
            expect(messages).to_contain_text(event)

        step = "alex's DM says Granted"
        page.select_option('#user', label='alex (Alex Rivera)')
        expect(page.locator('#head')).to_have_text('jit (DM)')
        expect(messages).to_contain_text('approved by @sam; granting now')
        expect(messages).to_contain_text(f'Granted read on demo-app for 20s ({request_id})')
        status = messages.locator('.msg', has_text=f'Your request {request_id}')
        expect(status).to_contain_text('Approved by @sam')  # the status message, updated in place
        expect(status.get_by_role('button')).to_have_count(0)  # decided: no Cancel any more

        step = "alex opens the request form while the grant runs, and cancels it"
        page.fill('#text', '/jit')
        page.press('#text', 'Enter')
        modal = page.locator('#modal')
        expect(modal.locator('h3')).to_have_text('Request access')
        expect(page.locator('#in-duration')).to_have_value('')  # the rule's default until alex picks one
        expect(page.locator('#in-duration option').first).to_have_text('the rule default')
        modal.get_by_role('button', name='Request').click()  # nothing chosen: the browser refuses, as Slack would
        assert page.eval_on_selector('#in-access', 'node => node.validity.valueMissing')
        expect(modal).to_be_visible()
        modal.get_by_role('button', name='Cancel').click()
        expect(modal).to_be_hidden()
        filed = messages.locator('.msg', has_text='Your request', has_not=page.locator('.eph'))  # not the answers
        expect(filed).to_have_count(1)  # the cancelled form filed nothing

        step = 'the revoke'
        expect(messages).to_contain_text(f'Access ended: read on demo-app ({request_id})', timeout=REVOKE * 1000)
        expect(grant).to_have_count(0)
        expect(grants).to_have_text('none')
        expect(calls).to_contain_text(f'revoke {request_id} \u2192 200')

        step = 'the screenshot'
        shot = tmp_path / 'sandbox.png'
        page.screenshot(path=str(shot))
        assert _png_size(shot) == (WIDTH, HEIGHT)
        if os.environ.get('JIT_SANDBOX_SCREENSHOT'):
            shutil.copyfile(shot, os.environ['JIT_SANDBOX_SCREENSHOT'])
        assert problems == [], problems
    except BaseException:
        page.screenshot(path=str(tmp_path / 'failure.png'))
        print(f'failed at: {step}; the page then: {tmp_path / "failure.png"}')
        raise


def test_approve_from_the_inbox_in_the_browser(browser: Any, sandbox: str, tmp_path: Path) -> None:
    """sam approves step 1 in Slack; sec approves step 2 from the email in the Inbox pane; Teams shows the cards."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={'width': WIDTH, 'height': HEIGHT})
    page.set_default_timeout(STEP * 1000)
    problems: list[str] = []
    page.on('pageerror', lambda error: problems.append(f'page error: {error}'))
    page.on('console', lambda msg: problems.append(f'console {msg.type}: {msg.text}') if msg.type == 'error' else None)
    step = 'opening the page'
    try:
        page.goto(sandbox)
        expect(page).to_have_title('jit sandbox')
        messages, ack, head = page.locator('#msgs'), page.locator('#ack'), page.locator('#head')

        step = 'alex asks for deploy'
        page.select_option('#user', label='alex (Alex Rivera)')
        page.fill('#text', '/jit request demo-app deploy 2m shipping <i>v2</i>')
        page.press('#text', 'Enter')
        answer = messages.locator('.msg', has=page.locator('.eph', has_text='only visible to you'))
        expect(answer.filter(has_text='Filed')).to_have_count(1)
        request_id = answer.locator('code').first.inner_text()
        assert re.fullmatch(r'r-[0-9a-z]+', request_id), f'no request id in the answer: {answer.inner_text()!r}'
        expect(ack).to_have_text('')  # the answer is in the DM only

        step = 'sam approves step 1 in Slack'
        page.select_option('#user', label='sam (Sam Lead)')
        approval = messages.locator('.msg', has_text=f'request {request_id}')
        approval.get_by_role('button', name='Approve').click()
        expect(approval.get_by_role('button')).to_have_count(0)  # sam has decided: no buttons on sam's copy

        step = "sec opens the Inbox and the email"
        page.select_option('#user', label='sec (Sec Officer)')
        inbox = page.locator('#chans [data-pane="@inbox"]')
        expect(inbox).to_have_class(re.compile(r'\bunread\b'), timeout=STEP * 2000)  # the email came
        inbox.click()
        expect(head).to_have_text('Inbox \u2014 sec@example.com')
        row = messages.locator('.mail', has_text=request_id)
        expect(row).to_have_count(1)
        expect(row).to_contain_text('jit sandbox <jit@sandbox.example>')
        row.click()
        expect(messages.locator('.mailhead')).to_contain_text('To: sec@example.com')
        frame_element = messages.locator('iframe')
        expect(frame_element).to_have_attribute('sandbox', 'allow-popups allow-popups-to-escape-sandbox')
        email_body = page.frame_locator('#msgs iframe')
        expect(email_body.locator('body')).to_contain_text('shipping <i>v2</i>')  # the reason as text
        expect(email_body.locator('i')).to_have_count(0)
        messages.get_by_role('button', name='Text').click()
        expect(messages.locator('pre.mailtext')).to_contain_text(request_id)
        expect(messages.locator('pre.mailtext a', has_text='do=approve')).to_have_count(1)
        messages.get_by_role('button', name='HTML').click()

        step = "sec follows the email's Approve link to jit's page"
        with page.expect_popup() as opened:
            page.frame_locator('#msgs iframe').get_by_role('link', name='Approve').click()
        decision = opened.value
        decision.set_default_timeout(STEP * 1000)
        expect(decision).to_have_url(re.compile(r'^http://127\.0\.0\.1:\d+/decide/[^/]+\?do=approve$'))
        expect(decision.locator('body')).to_contain_text(request_id)
        decision.get_by_role('button', name='Approve').click()
        expect(decision.locator('body')).to_contain_text('Approved')
        decision.close()

        step = 'the grant at the demo webhook and in alex\'s DM'
        grant = page.locator('#grants .grant', has_text=request_id)
        expect(grant).to_contain_text('demo-app / deploy for alex@example.com', timeout=STEP * 1000)
        page.select_option('#user', label='alex (Alex Rivera)')
        expect(messages).to_contain_text(f'Granted deploy on demo-app for 2m ({request_id})', timeout=STEP * 1000)

        step = 'the Teams pane: a card per step, then the outcome'
        page.locator('#chans [data-pane="@teams:approvers"]').click()
        expect(head).to_have_text('Teams \u2014 approvers')
        cards = messages.locator('.card', has_text=request_id)
        expect(cards).to_have_count(3, timeout=STEP * 1000)
        expect(cards.nth(0)).to_contain_text('shipping <i>v2</i>')
        expect(cards.nth(0).locator('i')).to_have_count(0)
        link = cards.nth(1).get_by_role('link', name='Approve')
        expect(link).to_have_attribute('href', re.compile(r'^http://127\.0\.0\.1:\d+/decide/teams/[^/]+\?do=approve$'))
        expect(link).to_have_attribute('target', '_blank')
        expect(cards.nth(2)).to_contain_text('Approved')
        expect(cards.nth(2).get_by_role('link')).to_have_count(0)

        page.screenshot(path=str(tmp_path / 'teams.png'))
        assert problems == [], problems
    except BaseException:
        page.screenshot(path=str(tmp_path / 'failure.png'))
        print(f'failed at: {step}; the page then: {tmp_path / "failure.png"}')
        raise
