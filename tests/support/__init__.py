"""Test infrastructure: a real distribution registry, a Docker-style token server and a loopback fault proxy."""
