"""Test doubles at the borders tether does not own: model APIs (real HTTP), a naive ACP client."""
