"""The MQTT broker's side of security: who may connect and what each identity may do."""
