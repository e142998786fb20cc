"""The local stack: AWS emulator, API server, SQS pollers (wired from template.yaml) and provider emulators."""
