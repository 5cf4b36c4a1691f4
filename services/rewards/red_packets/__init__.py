"""Red packets: operator-funded pools that members open, and packets members make for others to
grab."""
