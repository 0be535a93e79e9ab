"""Central's own MQTT v5 subscriber: a sans-I/O protocol core (protocol.py) and the thread that
drives it over a socket (client.py). PUBLISH packets are split by the Cython kernel
ext/mqttframes.pyx, so receiving costs central a small fraction of what paho's pure-Python reader
did, and QoS 1 messages are acknowledged only when the caller says so."""
