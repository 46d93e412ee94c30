"""Dynamic scenes: radiance fields that change over time (run kind ``dynamic``): K-Planes,
deformation and NSFF-style flow fields trained from multi-view or monocular captures with times."""
