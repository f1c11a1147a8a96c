"""Mail to approvers who are asked by email (a rule's ``ask: [email]``).

- ``bot.mail.message``: the emails themselves (pure): :func:`~bot.mail.message.approval_email` with its
  Approve and Deny links, :func:`~bot.mail.message.breakglass_email`.
- ``bot.mail.smtp``: :class:`~bot.mail.smtp.SmtpMailer`, which sends them through ``JIT_SMTP_URL`` and raises
  :class:`~bot.core.errors.DeliveryError` when it cannot.

Neither knows Redis or Slack; the outbox follower (``workers/outbox.py``) decides who gets what and when.
"""
