"""TrueX: FIX 5.0 SP2 over FIXT.1.1 order entry and market data, logon/REST authentication."""
