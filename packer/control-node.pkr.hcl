# A Distributed-CellProfiler control-node AMI. Built by `invoke build-ami`, which stages the recipe's files,
# renders the recipe (bootstrap/recipe.py, the same one `invoke bootstrap` runs) and passes their paths.
# Lines marked "compat:modern-only" need Packer >= 1.7 with the amazon plugin; `invoke build-ami` drops
# them for Debian's Packer 1.6.6 and applies the AMI's IMDSv2 marking with boto3 after the build instead
# (on 1.6.6 it also requires --ssh-cidr, as 1.6.6 cannot find the operator's public address itself).

packer {
  required_version = ">= 1.6.0"
}

variable "region" {
  type        = string
  description = "AWS region to build in, e.g. us-east-1 (a region, not an availability zone)."
  validation {
    condition     = length(var.region) >= 9 && length(split("-", var.region)) >= 3 && contains(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], substr(var.region, -1, 1))
    error_message = "The region must look like us-east-1: a region, not an availability zone such as us-east-1a."
  }
}

variable "instance_type" {
  type        = string
  default     = "t3.small"
  description = "Instance type of the temporary build instance."
  validation {
    condition     = length(var.instance_type) >= 4 && length(split(".", var.instance_type)) == 2
    error_message = "The instance type must look like t3.small."
  }
}

variable "source_ami_name" {
  type        = string
  default     = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
  description = "Name filter of the base AMI (default: Ubuntu 24.04 LTS)."
}

variable "source_ami_owner" {
  type        = string
  default     = "099720109477"
  description = "Owner of the base AMI (default: Canonical)."
  validation {
    condition     = length(var.source_ami_owner) == 12 || contains(["amazon", "self", "aws-marketplace"], var.source_ami_owner)
    error_message = "The AMI owner must be a 12-digit account id, amazon, self or aws-marketplace."
  }
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance (empty: the default VPC). It needs a route to the internet."
}

variable "associate_public_ip_address" {
  type        = bool
  default     = false
  description = "Give the build instance a public address even where the subnet would not (false: the subnet decides)."
}

variable "ssh_interface" {
  type        = string
  default     = ""
  description = "How Packer reaches the instance: empty (its public address, else its private one), public_ip, private_ip, or session_manager (private subnets; needs iam_instance_profile)."
  validation {
    condition     = contains(["", "public_ip", "private_ip", "public_dns", "private_dns", "session_manager"], var.ssh_interface)
    error_message = "The ssh_interface must be public_ip, private_ip, public_dns, private_dns or session_manager."
  }
}

variable "iam_instance_profile" {
  type        = string
  default     = ""
  description = "Instance profile for the build instance (session_manager needs one with AmazonSSMManagedInstanceCore)."
}

variable "security_group_id" {
  type        = string
  default     = ""
  description = "Security group allowing SSH from here (empty: Packer makes a temporary one)."
}

variable "ssh_username" {
  type        = string
  default     = "ubuntu"
  description = "Login user of the base AMI; it also owns the DCP clone in the image."
}

variable "ssh_host" {
  type        = string
  default     = ""
  description = "Address to SSH to (empty: the instance's). Tests pin it to 127.0.0.1."
}

variable "ssh_port" {
  type        = number
  default     = 22
  description = "SSH port."
}

variable "ssh_keypair_name" {
  type        = string
  default     = ""
  description = "Existing key pair to launch with (empty: a temporary one)."
}

variable "ssh_private_key_file" {
  type        = string
  default     = ""
  description = "Private key of ssh_keypair_name."
}

variable "custom_endpoint_ec2" {
  type        = string
  default     = ""
  description = "EC2 endpoint override (an emulator); empty for AWS."
}

variable "ami_name_prefix" {
  type        = string
  default     = "dcp-control-node"
  description = "The AMI is named <prefix>-<UTC timestamp>."
  validation {
    condition     = length(var.ami_name_prefix) >= 3 && length(var.ami_name_prefix) <= 100
    error_message = "The AMI name prefix must be 3 to 100 characters."
  }
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted root volume (empty: the account's default EBS key)."
}

variable "root_device_name" {
  type        = string
  default     = "/dev/sda1"
  description = "Root device of the base AMI (build-ami reads it from the AMI): the volume launched encrypted."
}

variable "root_volume_size" {
  type        = number
  default     = 8
  description = "Root volume size in GiB (build-ami uses the base AMI's)."
}

variable "ssh_source_cidrs" {
  type        = list(string)
  default     = []
  description = "IPv4 networks the temporary security group lets in on the SSH port (build-ami's --ssh-cidr)."
  validation {
    condition     = contains(var.ssh_source_cidrs, "0.0.0.0/0") == false
    error_message = "SSH must not be open to the whole internet (0.0.0.0/0): give your own address, e.g. 203.0.113.7/32."
  }
}

variable "ssh_source_public_ip" {
  type        = bool
  default     = false
  description = "Let in only the public address Packer sees for itself (amazon plugin; not on Packer 1.6.6)."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for the AMI and its snapshots (build-ami adds version, commit and recipe hash)."
}

variable "run_tags" {
  type        = map(string)
  default     = {}
  description = "Tags for the build instance, its volumes and (amazon plugin) its temporary key pair and security group."
}

variable "stage_dir" {
  type        = string
  description = "Folder of staged files (agent wheel, settings, login hook), made by build-ami."
}

variable "recipe_script" {
  type        = string
  description = "The rendered recipe (bootstrap/recipe.py), made by build-ami."
}

variable "scripts_dir" {
  type        = string
  description = "This folder's scripts/ (cleanup and validation)."
}

variable "node_manifest" {
  type        = string
  description = "Where to download the node's manifest (installed versions) to."
}

variable "packer_manifest" {
  type        = string
  description = "Where Packer writes its manifest (the AMI id is read from it)."
}

source "amazon-ebs" "control-node" {
  region            = var.region
  instance_type     = var.instance_type
  subnet_id         = var.subnet_id
  security_group_id = var.security_group_id

  associate_public_ip_address = var.associate_public_ip_address
  ssh_interface               = var.ssh_interface
  iam_instance_profile        = var.iam_instance_profile

  custom_endpoint_ec2  = var.custom_endpoint_ec2
  ami_name             = "${var.ami_name_prefix}-${formatdate("YYYYMMDD-hhmmss", timestamp())}"
  ami_description      = "Distributed-CellProfiler control node (dcp-control-node)"
  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_host             = var.ssh_host
  ssh_port             = var.ssh_port
  ssh_keypair_name     = var.ssh_keypair_name
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "10m"
  tags                 = var.tags
  snapshot_tags        = var.tags
  run_tags             = var.run_tags
  run_volume_tags      = var.run_tags

  temporary_security_group_source_cidrs     = var.ssh_source_cidrs
  temporary_security_group_source_public_ip = var.ssh_source_public_ip # compat:modern-only

  # The build instance's root volume is launched encrypted, so the image's snapshot is encrypted as made
  # (encrypt_boot would instead copy the finished image: a CopyImage of several minutes per build).
  launch_block_device_mappings {
    device_name           = var.root_device_name
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  source_ami_filter {
    filters = {
      name                = var.source_ami_name
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [var.source_ami_owner]
    most_recent = true
  }

  metadata_options {                         # compat:modern-only
    http_endpoint               = "enabled"  # compat:modern-only
    http_tokens                 = "required" # compat:modern-only
    http_put_response_hop_limit = 1          # compat:modern-only
  }                                          # compat:modern-only
  imds_support = "v2.0"                      # compat:modern-only
}

build {
  sources = ["source.amazon-ebs.control-node"]

  # cloud-init and apt's first-boot timers finish before the recipe touches dpkg.
  provisioner "shell" {
    script          = "${var.scripts_dir}/first-boot-wait.sh"
    execute_command = "chmod +x {{ .Path }}; sudo -E bash '{{ .Path }}'"
  }

  provisioner "shell" {
    inline = ["sudo mkdir -p /var/tmp/dcp-stage", "sudo chown \"$(id -un)\" /var/tmp/dcp-stage", "sudo chmod 700 /var/tmp/dcp-stage"]
  }

  provisioner "file" {
    source      = "${var.stage_dir}/"
    destination = "/var/tmp/dcp-stage"
  }

  provisioner "shell" {
    script          = var.recipe_script
    execute_command = "chmod +x {{ .Path }}; sudo -E bash '{{ .Path }}'"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/etc/dcp-control-node/manifest.json"
    destination = var.node_manifest
  }

  provisioner "shell" {
    scripts         = ["${var.scripts_dir}/cleanup.sh", "${var.scripts_dir}/validate.sh"]
    execute_command = "chmod +x {{ .Path }}; sudo -E bash '{{ .Path }}'"
  }

  post-processor "manifest" {
    output     = var.packer_manifest
    strip_path = true
  }
}
