"""The stubs' answers are completed from botocore's own model (tests/support/botocore_stubs.py), whatever it holds.

A botocore release that makes a field required in any answer of the services the AWS providers call must not
break a stubbed test: the completion alone must be a valid answer of every operation, for every kind of shape
the model has (tagged unions, bounded strings and lists, nested structures).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.model import ServiceModel
from botocore.validate import validate_parameters

from tests.support.botocore_stubs import ModelStubber, complete

#: What jit's AWS providers and their credentials call (workers/providers/aws_iam.py, aws_sso.py, _aws.py).
SERVICES = ('iam', 'sso-admin', 'identitystore', 'sts')


def _service(name: str) -> ServiceModel:
    client = boto3.client(name, region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')
    return client.meta.service_model


@pytest.mark.parametrize('service', SERVICES)
def test_the_completion_alone_is_a_valid_answer_of_every_operation(service):
    model = _service(service)
    invalid = {}
    assert model.operation_names
    for name in model.operation_names:
        shape = model.operation_model(name).output_shape
        if shape is None:
            continue
        try:
            validate_parameters(complete(shape, {}), shape)
        except Exception as exc:  # every operation is tried, the failures listed together
            invalid[name] = f'{type(exc).__name__}: {exc}'
    assert not invalid, invalid


def test_a_stubbed_answer_that_names_one_field_is_accepted_by_botocore_stubber():
    """GetUserId's answer requires IdentityStoreId, UserId and, in newer botocore, UserArn: the test names UserId."""
    client = boto3.client('identitystore', region_name='us-east-1', aws_access_key_id='testing',
                          aws_secret_access_key='testing')  # fmt: skip
    with ModelStubber(client) as stub:
        stub.add_response('get_user_id', {'UserId': 'u-1'})
        answer = client.get_user_id(IdentityStoreId='d-1', AlternateIdentifier={
            'UniqueAttribute': {'AttributePath': 'emails.value', 'AttributeValue': 'a@example.com'}})  # fmt: skip
    assert answer['UserId'] == 'u-1'
    shape = client.meta.service_model.operation_model('GetUserId').output_shape
    assert shape is not None
    assert set(shape.required_members) <= set(answer)
