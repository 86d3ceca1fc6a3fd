"""Numbers that judge a learned sampler: Fréchet distances, a digits classifier score."""
