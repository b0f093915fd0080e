-- How each meter is reached, for the pollers and the command dispatcher.
-- `address` (0001) holds the Modbus unit id, the 12-digit DL/T 645 or the 14-digit CJ/T 188
-- address; `model` (0001) the Modbus register map. `endpoint` is the bus: tcp://host:port
-- (Modbus TCP, or an RS-485-to-TCP serial server for DL/T 645 / CJ/T 188),
-- rtu+tcp://host:port (Modbus RTU frames through a serial server); empty for MQTT meters,
-- which use the configured broker. `control` holds protocol settings of relay and valve
-- commands, e.g. {"password": "000000", "password_level": 2, "operator": "00000000"} for
-- DL/T 645 or {"allow_unverified": true} for a Modbus map whose relay register is unverified.

ALTER TABLE meters
    ADD COLUMN endpoint text NOT NULL DEFAULT ''
        CHECK (endpoint = '' OR endpoint ~ '^(tcp|rtu\+tcp|mqtt)://[^/:]+:[0-9]{1,5}$'),
    ADD COLUMN control jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(control) = 'object');

