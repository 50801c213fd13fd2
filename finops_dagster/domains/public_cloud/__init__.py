"""The public_cloud domain: provider bills (FOCUS exports, the GCP billing export, cost APIs) as relevés."""
