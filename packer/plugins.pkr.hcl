# Packer >= 1.7 with the amazon plugin (what users install). `invoke build-ami` leaves this file out for
# Packer 1.6.6, which has the amazon-ebs builder built in and does not know required_plugins.
packer {
  required_plugins {
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
