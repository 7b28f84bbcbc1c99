defmodule Sample do def hello, do: :world end
