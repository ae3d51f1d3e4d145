"""moto server, with the AWS behaviour it lacks that the tests rely on (each patch says what AWS does).

Run as ``python -m rig.moto_main -H 127.0.0.1 -p PORT``, exactly like ``moto_server``.
"""

from __future__ import annotations

import sys

import moto.iam.models
from moto.server import main

# CreateServiceLinkedRole: AWS names the spot roles AWSServiceRoleForEC2SpotFleet and AWSServiceRoleForEC2Spot
# (EC2 User Guide, "Service-linked role for Spot Fleet" / "for Spot Instance requests"); moto builds the name
# from the service principal and would say AWSServiceRoleForspotfleet. STUB of AWS's naming only.
moto.iam.models.SERVICE_NAME_CONVERSION.update({"spotfleet": "EC2SpotFleet", "spot": "EC2Spot"})

if __name__ == "__main__":
    main(sys.argv[1:])
