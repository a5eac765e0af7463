"""Online model code in pure numpy: no Flask, no SQL. Arrays in, arrays out."""
