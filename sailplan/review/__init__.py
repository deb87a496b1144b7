"""Reviewing a mesh change: what it does in traffic terms (`diff`) and the mesh as a picture
(`graph`). Pure functions from Mesh objects to text; the CLI does the I/O."""
