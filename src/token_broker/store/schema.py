"""The whole schema on one MetaData. Each models module registers its tables on `Base` when imported, and
`models` imports none of the others, so whatever needs every table (migrations, tests that compare or truncate
them) takes `metadata` from here rather than `Base.metadata` from one module."""

from __future__ import annotations

from token_broker.store import (
    activity_models,
    hook_models,
    link_models,
    models,
    oauth_models,
    org_models,
    scanning_models,
)

MODULES = (models, link_models, oauth_models, hook_models, org_models, activity_models, scanning_models)
metadata = models.Base.metadata
