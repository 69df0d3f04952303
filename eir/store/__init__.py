"""Identity stores behind one interface (:class:`eir.store.base.IdentityStore`)."""
