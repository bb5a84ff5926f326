"""Economics of the grid: tariffs now; bids, clearing, settlement and the ledger later."""
