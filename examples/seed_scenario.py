"""The classic Keras question, run by padless with only the import changed.

Fits on length 50, then 10, then 60, then once on a *list* mixing all three lengths (which Keras cannot
do without padding); the parameter count never changes. Run: ``python examples/seed_scenario.py``.
"""

import numpy as np

from padless import Sequential
from padless.layers import LSTM, Dense


def main(n: int = 1000, verbose: int = 1) -> Sequential:
    model = Sequential()
    model.add(LSTM(100, return_sequences=True, input_shape=(None, 100)))
    model.add(LSTM(100))
    model.add(Dense(2, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    params = model.count_params()

    x_train = np.random.random((n, 50, 100)); y_train = np.random.random((n, 2))
    x_train_2 = np.random.random((n, 10, 100)); y_train_2 = np.random.random((n, 2))
    x_val = np.random.random((200, 50, 100)); y_val = np.random.random((200, 2))
    model.fit(x_train, y_train, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=verbose)
    model.fit(x_train_2, y_train_2, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=verbose)
    score = model.evaluate(x_val, y_val, batch_size=200, verbose=verbose)

    x_train_3 = np.random.random((n, 60, 100)); y_train_3 = np.random.random((n, 2))
    model.fit(x_train_3, y_train_3, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=verbose)

    # What Keras cannot do: one fit on a list mixing all three lengths, no padding.
    mixed = list(x_train) + list(x_train_2) + list(x_train_3)
    y_mixed = np.concatenate([y_train, y_train_2, y_train_3])
    model.fit(mixed, y_mixed, batch_size=200, epochs=1, validation_data=(x_val, y_val), verbose=verbose)

    if model.count_params() != params:
        raise RuntimeError("parameter count changed")  # never happens: a cell is not a time step
    if verbose:
        print(f"evaluate on (200, 50, 100): {score}")
        print(f"parameters before and after every fit: {params:,} (Keras counts 161,002: PyTorch keeps two biases)")
    return model


if __name__ == "__main__":
    main()
