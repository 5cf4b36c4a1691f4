"""Team-buy campaigns: teams of a fixed size, scored by their members' net spend, ranked on live
leaderboards and settled once with prizes by rank."""
