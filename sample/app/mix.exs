defmodule Sample.MixProject do
  use Mix.Project

  def project do
    [app: :sample, version: "0.1.0", elixir: "~> 1.15", deps: deps()]
  end

  defp deps do
    [{:phoenix, "~> 1.7"}, {:jason, "~> 1.4"}]
  end
end
