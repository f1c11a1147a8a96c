"""`jit sandbox` in a real browser: what a person trying jit sees, asserted on the page's DOM.

Headless Chromium opens the URL `python -m bot sandbox` prints and does what the README's quick start says:
alex types `/jit request demo-app read 20s trying jit` and reads the ephemeral answer; sam finds the approval DM
and presses Approve; the demo webhook panel shows the grant, alex's DM says "Granted", and 20 s later the
revoke shows in both. Every assertion reads the page (Playwright's `expect` retries until its timeout), never
Redis, so a page that renders wrong fails even when jit itself is right.

While the grant runs alex opens `/jit`'s form, finds nothing preselected, and cancels it. The run ends with a
1280x800 screenshot of alex's DM with the whole lifecycle; `JIT_SANDBOX_SCREENSHOT=PATH` also copies it to PATH
(the README's `docs/sandbox.png` is made with `JIT_SANDBOX_SCREENSHOT=docs/sandbox.png python -m pytest tests/browser`).
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
        expect(ack).to_contain_text('Filed', timeout=STEP * 1000)
        request_id = ack.locator('code').first.inner_text()
        assert re.fullmatch(r'r-[0-9a-z]+', request_id), f'no request id in the answer: {ack.inner_text()!r}'
        expect(ack).to_contain_text(f'Filed {request_id}: read on demo-app for 20s')
        expect(page.locator('#text')).to_have_value('')
        answer = messages.locator('.msg', has=page.locator('.eph', has_text='only visible to you'))
        expect(answer.filter(has_text=f'Filed {request_id}')).to_have_count(1)
        expect(answer.first).not_to_contain_text(':inbox_tray:')  # shortcodes are shown as emoji

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
        expect(messages.locator('.msg', has_text='Your request')).to_have_count(1)  # the cancelled form filed nothing

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
