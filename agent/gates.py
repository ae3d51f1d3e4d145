"""Prerequisites that checks in other modules name: each is provided by exactly one check (its ``provides=``).

A check module imports these, never another check module."""

from agent.registry import Gate

AWS_FILES = Gate("~/.aws/config and credentials parse")                 # C01
REGION = Gate("the region is a region")                                 # C08
CREDENTIAL_LAYOUT = Gate("DCP can hand the credentials to workers")     # C04
CREDENTIALS = Gate("AWS credentials are valid")                         # I01
CONFIG = Gate("config.py loads")                                        # K01
FLEET = Gate("the fleet file has what run.py reads")                    # F01
BUCKETS = Gate("the buckets exist and answer")                          # S02
SUBNETS = Gate("the fleet's subnets exist")                             # N01

AWS = (CREDENTIALS, REGION)
