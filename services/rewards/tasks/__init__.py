"""Tasks: once, daily, weekly, monthly and streak tasks, chains of them, progress from bus
events, and their rewards paid through points grants, draw tickets and wallet issues."""
