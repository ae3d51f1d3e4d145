"""Every check module; importing this package registers them all."""

from agent.checks import (  # noqa: F401
    awsconfig,
    capacity,
    config_lint,
    fleet,
    iam,
    identity,
    local,
    monitor,
    network,
    s3,
    sqs,
)
