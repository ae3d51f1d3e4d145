"""Every read the agent makes, of AWS or of the node, as a named fact: ``facts.iam.role(ctx, name)``,
``facts.ec2.subnets(ctx, ids)``, ``facts.s3.head(ctx, bucket)``, ``facts.local.python_probe(ctx)`` …

Checks only judge what facts return; they never call a client. See ``agent/facts/core.py``.
"""

from agent.facts import aws, cloudwatch, ec2, ecs, iam, local, monitor, quotas, run, s3, sqs, ssm
from agent.facts.core import FACTS, AwsError, Fact, code_of, fact, gather

__all__ = ["FACTS", "AwsError", "Fact", "aws", "cloudwatch", "code_of", "ec2", "ecs", "fact", "gather", "iam", "local",
           "monitor", "quotas", "run", "s3", "sqs", "ssm"]
