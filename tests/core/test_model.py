"""The request model's small rules."""

from bot.core.model import Principal


def test_one_access_key_for_a_person_whatever_the_slack_id_and_never_a_persons_for_a_pipeline():
    assert Principal(slack_id='U0A', email='Alex@Example.com').access_key == 'alex@example.com'
    assert Principal(slack_id='U0B', email='alex@example.com').access_key == 'alex@example.com'
    assert Principal(slack_id='U0A').access_key == 'U0A'
    assert Principal(pipeline='U0A').access_key == 'pipeline:U0A', 'a pipeline named like a user is not that user'
