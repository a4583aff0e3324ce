"""The learner: acting (collect, evaluate), PPO's losses and update, networks, optimisers."""
