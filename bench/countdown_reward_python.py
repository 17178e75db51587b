"""TinyZero's countdown reward (verl/utils/reward_score/countdown.py: the last
<answer>, a regex check of the characters, every number used once, Python eval), timed
on the action bench/environments_bench.cpp's countdown_judge uses. The baseline for
troupe's countdown environment.
    python3 bench/countdown_reward_python.py
"""
import re
import timeit

ACTION = "Let me think: 25-5 is 20, and 20*4 is 80, so that works. <answer>(25 - 5) * 4</answer>"


def extract_solution(solution_str):
    matches = list(re.finditer(r"<answer>(.*?)</answer>", solution_str))
    return matches[-1].group(1).strip() if matches else None


def validate_equation(equation_str, available_numbers):
    try:
        numbers_in_eq = [int(n) for n in re.findall(r"\d+", equation_str)]
        return sorted(numbers_in_eq) == sorted(available_numbers)
    except Exception:
        return False


def evaluate_equation(equation_str):
    try:
        if not re.match(r"^[\d+\-*/().\s]+$", equation_str):
            raise ValueError("Invalid characters in equation.")
        return eval(equation_str, {"__builtins__": None}, {})
    except Exception:
        return None


def compute_score(solution_str, target, numbers, format_score=0.1, score=1.0):
    equation = extract_solution(solution_str)
    if equation is None:
        return 0
    if not validate_equation(equation, numbers):
        return format_score
    result = evaluate_equation(equation)
    if result is None:
        return format_score
    return score if abs(result - target) < 1e-5 else format_score


assert compute_score(ACTION, 80, [25, 5, 4]) == 1.0
n = 200000
t = min(timeit.repeat(lambda: compute_score(ACTION, 80, [25, 5, 4]), number=n, repeat=3))
print(f"TinyZero countdown reward (Python): {n / t:,.0f} actions/s")
