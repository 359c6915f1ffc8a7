"""Training targets: ``emoca-coarse``, ``emoca-detail`` (:mod:`.emoca`), ``emonet`` (:mod:`.emonet`),
``emorec`` (:mod:`.emorec`). Each is a :class:`.base.Stage`."""
