"""Protocol adapters, simulators, command delivery and notification gateways."""
