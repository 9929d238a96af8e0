"""Regenerate the finance Q&A example data (finance-alpaca schema: instruction, input, output).

    python examples/finance/generate.py

Hand-written definitions and short explanations, plus ratio and interest calculations whose numbers are computed
here, so every worked answer is arithmetically right. Writes train.json and test.json next to this file.
"""

import json
import math
import os
import random
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 11
N_TEST = 50

# (instruction, input, output): written by us, 1-3 sentences each
CONCEPTS = [
    # accounting
    (
        "What is a balance sheet?",
        "",
        (
            "A balance sheet is a financial statement that lists a company's assets, liabilities and shareholders'"
            " equity at a specific date. It always balances because assets equal liabilities plus equity."
        ),
    ),
    (
        "What does an income statement show?",
        "",
        (
            "An income statement shows a company's revenue, expenses and resulting profit or loss over a period such as"
            " a quarter or a year."
        ),
    ),
    (
        "What is a cash flow statement?",
        "",
        (
            "A cash flow statement reports the cash a business received and spent during a period, split into"
            " operating, investing and financing activities."
        ),
    ),
    (
        "What is the accounting equation?",
        "",
        "The accounting equation is Assets = Liabilities + Equity. Every transaction keeps both sides equal.",
    ),
    (
        "What is accrual accounting?",
        "",
        (
            "Accrual accounting records revenue when it is earned and expenses when they are incurred, regardless of"
            " when cash changes hands."
        ),
    ),
    (
        "What is cash-basis accounting?",
        "",
        (
            "Cash-basis accounting records revenue when cash is received and expenses when cash is paid. It is simpler"
            " than accrual accounting but can misstate performance within a period."
        ),
    ),
    (
        "What is depreciation?",
        "",
        (
            "Depreciation spreads the cost of a tangible long-lived asset, such as a machine, over its useful life as"
            " an expense on the income statement."
        ),
    ),
    (
        "What is amortization in accounting?",
        "",
        (
            "Amortization spreads the cost of an intangible asset, such as a patent or software license, over its"
            " useful life."
        ),
    ),
    (
        "What are accounts receivable?",
        "",
        (
            "Accounts receivable are amounts customers owe a company for goods or services already delivered on credit."
            " They are a current asset."
        ),
    ),
    (
        "What are accounts payable?",
        "",
        (
            "Accounts payable are amounts a company owes its suppliers for goods or services bought on credit. They are"
            " a current liability."
        ),
    ),
    (
        "What is retained earnings?",
        "",
        (
            "Retained earnings are the cumulative profits a company has kept rather than paid out as dividends. They"
            " appear in shareholders' equity."
        ),
    ),
    (
        "What is goodwill on a balance sheet?",
        "",
        (
            "Goodwill is an intangible asset recorded when a company buys another business for more than the fair value"
            " of its identifiable net assets."
        ),
    ),
    (
        "What is the difference between a debit and a credit?",
        "",
        (
            "In double-entry bookkeeping a debit is an entry on the left side of an account and a credit is on the"
            " right. Debits increase assets and expenses, while credits increase liabilities, equity and revenue."
        ),
    ),
    (
        "What is double-entry bookkeeping?",
        "",
        (
            "Double-entry bookkeeping records every transaction in at least two accounts, with equal debits and"
            " credits, so the books stay balanced."
        ),
    ),
    (
        "What is a general ledger?",
        "",
        (
            "A general ledger is the complete record of a company's accounts and every transaction posted to them."
            " Financial statements are prepared from it."
        ),
    ),
    (
        "What is a trial balance?",
        "",
        (
            "A trial balance lists the balances of all general ledger accounts to check that total debits equal total"
            " credits."
        ),
    ),
    (
        "What is working capital?",
        "",
        (
            "Working capital is current assets minus current liabilities. It measures the short-term funds available to"
            " run daily operations."
        ),
    ),
    (
        "What is cost of goods sold?",
        "",
        (
            "Cost of goods sold (COGS) is the direct cost of producing the goods a company sold in a period, such as"
            " materials and direct labor."
        ),
    ),
    (
        "What is gross profit?",
        "",
        (
            "Gross profit is revenue minus cost of goods sold. It shows how much a company earns from its products"
            " before operating expenses."
        ),
    ),
    (
        "What is operating income?",
        "",
        (
            "Operating income is gross profit minus operating expenses such as salaries, rent and marketing. It"
            " excludes interest and taxes."
        ),
    ),
    (
        "What is net income?",
        "",
        (
            "Net income is the profit left after subtracting all expenses, interest and taxes from revenue. It is the"
            " bottom line of the income statement."
        ),
    ),
    (
        "What does EBITDA stand for?",
        "",
        (
            "EBITDA stands for earnings before interest, taxes, depreciation and amortization. It is used as a rough"
            " measure of operating cash generation."
        ),
    ),
    (
        "What is an accrued expense?",
        "",
        (
            "An accrued expense is a cost that has been incurred but not yet paid, such as wages earned by employees"
            " before payday. It is recorded as a liability."
        ),
    ),
    (
        "What is deferred revenue?",
        "",
        (
            "Deferred revenue is cash received for goods or services not yet delivered, such as an annual subscription"
            " paid in advance. It is a liability until the company delivers."
        ),
    ),
    (
        "What is a prepaid expense?",
        "",
        (
            "A prepaid expense is a payment made in advance for future goods or services, such as insurance. It is"
            " recorded as an asset and expensed over time."
        ),
    ),
    (
        "What is inventory in accounting?",
        "",
        "Inventory is goods a company holds for sale, plus raw materials and work in progress. It is a current asset.",
    ),
    (
        "What is the difference between FIFO and LIFO?",
        "",
        (
            "FIFO (first in, first out) assumes the oldest inventory is sold first, while LIFO (last in, first out)"
            " assumes the newest is sold first. When prices rise, LIFO gives a higher cost of goods sold and lower"
            " taxable profit."
        ),
    ),
    (
        "What is an audit?",
        "",
        (
            "An audit is an independent examination of a company's financial statements to give an opinion on whether"
            " they are fairly presented under the applicable accounting standards."
        ),
    ),
    (
        "What is GAAP?",
        "",
        (
            "GAAP stands for Generally Accepted Accounting Principles, the accounting standards used for financial"
            " reporting in the United States."
        ),
    ),
    (
        "What is IFRS?",
        "",
        (
            "IFRS stands for International Financial Reporting Standards, the accounting standards used in the European"
            " Union and many other countries."
        ),
    ),
    (
        "What is a fiscal year?",
        "",
        (
            "A fiscal year is the 12-month period a company uses for its accounting and reporting. It need not match"
            " the calendar year."
        ),
    ),
    (
        "What is a write-off?",
        "",
        (
            "A write-off removes an asset's value from the books when it is no longer recoverable, such as an unpaid"
            " customer debt. It is recorded as an expense or loss."
        ),
    ),
    (
        "What is an allowance for doubtful accounts?",
        "",
        (
            "An allowance for doubtful accounts is an estimate of receivables that will not be collected. It reduces"
            " accounts receivable on the balance sheet."
        ),
    ),
    (
        "What is book value?",
        "",
        (
            "Book value is a company's total assets minus total liabilities as recorded on its balance sheet, which"
            " equals shareholders' equity."
        ),
    ),
    (
        "What is free cash flow?",
        "",
        (
            "Free cash flow is operating cash flow minus capital expenditures. It is the cash a company can use for"
            " dividends, buybacks or paying down debt."
        ),
    ),
    (
        "What are capital expenditures?",
        "",
        (
            "Capital expenditures (capex) are spending on long-term assets such as buildings, equipment or software"
            " that will benefit the business for more than a year."
        ),
    ),
    (
        "What is the difference between revenue and profit?",
        "",
        (
            "Revenue is the total money earned from sales, while profit is what remains after expenses are subtracted."
            " A company can have high revenue and still make a loss."
        ),
    ),
    (
        "What is a contingent liability?",
        "",
        (
            "A contingent liability is a possible obligation that depends on a future event, such as the outcome of a"
            " lawsuit. It is recorded if likely and estimable, otherwise disclosed in the notes."
        ),
    ),
    # corporate finance and valuation
    (
        "What is the time value of money?",
        "",
        (
            "The time value of money is the idea that a dollar today is worth more than a dollar in the future because"
            " it can be invested to earn a return."
        ),
    ),
    (
        "What is net present value?",
        "",
        (
            "Net present value (NPV) is the sum of a project's future cash flows discounted to today minus the initial "
            "investment. A positive NPV means the project should add value."
        ),
    ),
    (
        "What is the internal rate of return?",
        "",
        (
            "The internal rate of return (IRR) is the discount rate at which a project's net present value equals zero."
            " A project is attractive if its IRR exceeds the cost of capital."
        ),
    ),
    (
        "What is the weighted average cost of capital?",
        "",
        (
            "The weighted average cost of capital (WACC) is the average rate a company pays for its financing,"
            " weighting the cost of equity and the after-tax cost of debt by their shares of total capital."
        ),
    ),
    (
        "What is a discount rate?",
        "",
        (
            "A discount rate is the rate used to convert future cash flows into present value. It reflects the time"
            " value of money and the risk of the cash flows."
        ),
    ),
    (
        "What is a discounted cash flow valuation?",
        "",
        (
            "A discounted cash flow (DCF) valuation estimates what a business is worth by projecting its future free"
            " cash flows and discounting them to the present."
        ),
    ),
    (
        "What is enterprise value?",
        "",
        (
            "Enterprise value is market capitalization plus total debt minus cash. It estimates the cost of buying the"
            " whole business, including its debt."
        ),
    ),
    (
        "What is market capitalization?",
        "",
        (
            "Market capitalization is a company's share price multiplied by its number of shares outstanding. It is the"
            " market value of its equity."
        ),
    ),
    (
        "What is the payback period?",
        "",
        (
            "The payback period is the time it takes for an investment's cash inflows to recover its initial cost. It"
            " ignores the time value of money and cash flows after payback."
        ),
    ),
    (
        "What is leverage in finance?",
        "",
        "Leverage is the use of borrowed money to finance assets. It magnifies both gains and losses on equity.",
    ),
    (
        "What is a leveraged buyout?",
        "",
        (
            "A leveraged buyout (LBO) is the purchase of a company funded mostly with debt, often secured by the"
            " target's own assets and repaid from its cash flows."
        ),
    ),
    (
        "What is a stock buyback?",
        "",
        (
            "A stock buyback is when a company repurchases its own shares from the market. It reduces shares"
            " outstanding and can raise earnings per share."
        ),
    ),
    (
        "What is a dividend?",
        "",
        "A dividend is a distribution of a company's profits to its shareholders, usually paid in cash per share.",
    ),
    (
        "What is a stock split?",
        "",
        (
            "A stock split increases the number of shares by dividing each existing share, for example 2-for-1. The"
            " share price falls proportionally, so the company's market value does not change."
        ),
    ),
    (
        "What is an initial public offering?",
        "",
        (
            "An initial public offering (IPO) is the first sale of a private company's shares to the public, after"
            " which the shares trade on a stock exchange."
        ),
    ),
    (
        "What is dilution for shareholders?",
        "",
        "Dilution is the reduction in existing shareholders' ownership percentage when a company issues new shares.",
    ),
    (
        "What is the cost of equity?",
        "",
        (
            "The cost of equity is the return shareholders require for owning a company's stock. It is often estimated"
            " with the capital asset pricing model."
        ),
    ),
    (
        "What is the capital asset pricing model?",
        "",
        (
            "The capital asset pricing model (CAPM) estimates an asset's expected return as the risk-free rate plus"
            " beta times the market risk premium."
        ),
    ),
    (
        "What is beta in investing?",
        "",
        (
            "Beta measures how much a stock's returns move with the overall market. A beta of 1.5 means the stock tends"
            " to move 50% more than the market."
        ),
    ),
    (
        "What is economic value added?",
        "",
        (
            "Economic value added (EVA) is a company's after-tax operating profit minus a charge for the capital it"
            " uses. A positive EVA means it earns more than its cost of capital."
        ),
    ),
    # markets and investing
    (
        "What is a stock?",
        "",
        "A stock is a share of ownership in a company. Shareholders can profit from price increases and dividends.",
    ),
    (
        "What is a bond?",
        "",
        (
            "A bond is a loan from an investor to a government or company that pays periodic interest, called coupons,"
            " and returns the face value at maturity."
        ),
    ),
    (
        "What is a bond's coupon rate?",
        "",
        (
            "The coupon rate is the annual interest a bond pays as a percentage of its face value. A $1,000 bond with a"
            " 5% coupon pays $50 a year."
        ),
    ),
    (
        "What is yield to maturity?",
        "",
        (
            "Yield to maturity is the total annual return an investor earns if a bond is bought at its current price"
            " and held until it matures, with all payments made as promised."
        ),
    ),
    (
        "Why do bond prices fall when interest rates rise?",
        "",
        (
            "When rates rise, new bonds pay higher coupons, so existing bonds with lower coupons must fall in price to"
            " offer a competitive yield."
        ),
    ),
    (
        "What is duration for a bond?",
        "",
        (
            "Duration measures how sensitive a bond's price is to changes in interest rates. A duration of 6 means the"
            " price falls about 6% if rates rise by one percentage point."
        ),
    ),
    (
        "What is a mutual fund?",
        "",
        (
            "A mutual fund pools money from many investors to buy a diversified portfolio of stocks, bonds or other"
            " assets, managed by a professional manager."
        ),
    ),
    (
        "What is an exchange-traded fund?",
        "",
        (
            "An exchange-traded fund (ETF) is a fund that holds a basket of assets and trades on a stock exchange like"
            " a single stock. Many ETFs track an index at low cost."
        ),
    ),
    (
        "What is an index fund?",
        "",
        (
            "An index fund is a mutual fund or ETF that tracks a market index, such as the S&P 500, instead of picking "
            "individual securities. It usually has low fees."
        ),
    ),
    (
        "What is diversification?",
        "",
        (
            "Diversification is spreading investments across many assets so that a loss in one has a limited effect on"
            " the whole portfolio."
        ),
    ),
    (
        "What is asset allocation?",
        "",
        (
            "Asset allocation is how a portfolio is divided among asset classes such as stocks, bonds and cash. It is"
            " the main driver of a portfolio's risk and return."
        ),
    ),
    (
        "What is rebalancing a portfolio?",
        "",
        (
            "Rebalancing is buying and selling assets to bring a portfolio back to its target allocation after market"
            " moves have shifted the weights."
        ),
    ),
    (
        "What is a bull market?",
        "",
        "A bull market is a period of rising prices, commonly defined as a rise of 20% or more from a recent low.",
    ),
    (
        "What is a bear market?",
        "",
        "A bear market is a period of falling prices, commonly defined as a decline of 20% or more from a recent high.",
    ),
    (
        "What is market volatility?",
        "",
        (
            "Volatility is how much and how quickly an asset's price moves up and down. It is often measured by the"
            " standard deviation of returns."
        ),
    ),
    (
        "What is liquidity in financial markets?",
        "",
        (
            "Liquidity is how quickly an asset can be bought or sold without moving its price much. Cash and"
            " large-company stocks are highly liquid, while real estate is not."
        ),
    ),
    (
        "What is a bid-ask spread?",
        "",
        (
            "The bid-ask spread is the difference between the highest price a buyer will pay and the lowest price a"
            " seller will accept. A narrow spread signals a liquid market."
        ),
    ),
    (
        "What is a limit order?",
        "",
        (
            "A limit order is an instruction to buy or sell a security only at a specified price or better. It controls"
            " price but may not be filled."
        ),
    ),
    (
        "What is a market order?",
        "",
        (
            "A market order is an instruction to buy or sell immediately at the best available price. It is filled"
            " quickly, but the price is not guaranteed."
        ),
    ),
    (
        "What is a stop-loss order?",
        "",
        (
            "A stop-loss order sells a security automatically once its price falls to a set level, limiting the loss on"
            " a position."
        ),
    ),
    (
        "What is short selling?",
        "",
        (
            "Short selling is borrowing shares and selling them, hoping to buy them back later at a lower price. The"
            " loss is unlimited if the price keeps rising."
        ),
    ),
    (
        "What is a call option?",
        "",
        (
            "A call option gives its buyer the right, but not the obligation, to buy an asset at a set strike price"
            " before or at expiry."
        ),
    ),
    (
        "What is a put option?",
        "",
        (
            "A put option gives its buyer the right, but not the obligation, to sell an asset at a set strike price"
            " before or at expiry. It gains value when the asset falls."
        ),
    ),
    (
        "What is a futures contract?",
        "",
        (
            "A futures contract is an agreement to buy or sell an asset at a set price on a future date, traded on an"
            " exchange. Both sides are obliged to complete the trade."
        ),
    ),
    (
        "What is a derivative?",
        "",
        (
            "A derivative is a financial contract whose value depends on an underlying asset, rate or index. Options,"
            " futures and swaps are derivatives."
        ),
    ),
    (
        "What is an interest rate swap?",
        "",
        (
            "An interest rate swap is a contract in which two parties exchange interest payments, typically fixed-rate"
            " payments for floating-rate payments on the same notional amount."
        ),
    ),
    (
        "What is hedging?",
        "",
        (
            "Hedging is taking an offsetting position to reduce the risk of an existing one, such as buying a put"
            " option to protect against a fall in a stock you own."
        ),
    ),
    (
        "What is a blue-chip stock?",
        "",
        (
            "A blue-chip stock is a share in a large, well-established and financially sound company with a long record"
            " of stable earnings."
        ),
    ),
    (
        "What is a growth stock?",
        "",
        (
            "A growth stock belongs to a company expected to grow revenue and earnings faster than the market. Such"
            " companies often reinvest profits instead of paying dividends."
        ),
    ),
    (
        "What is a value stock?",
        "",
        (
            "A value stock trades at a low price relative to fundamentals such as earnings or book value, which"
            " investors may see as undervalued."
        ),
    ),
    (
        "What is a dividend reinvestment plan?",
        "",
        (
            "A dividend reinvestment plan (DRIP) automatically uses a stock's dividends to buy more shares of the same"
            " stock."
        ),
    ),
    (
        "What is dollar-cost averaging?",
        "",
        (
            "Dollar-cost averaging is investing a fixed amount at regular intervals regardless of price. It buys more"
            " shares when prices are low and fewer when they are high."
        ),
    ),
    (
        "What is an expense ratio?",
        "",
        (
            "An expense ratio is a fund's annual operating cost as a percentage of its assets. A 0.20% ratio costs $2 a"
            " year per $1,000 invested."
        ),
    ),
    (
        "What is a stock exchange?",
        "",
        (
            "A stock exchange is a regulated marketplace where shares of listed companies are bought and sold, such as"
            " the NYSE or the London Stock Exchange."
        ),
    ),
    (
        "What is a stock market index?",
        "",
        (
            "A stock market index tracks the performance of a group of stocks, such as the S&P 500, to represent a"
            " market or sector."
        ),
    ),
    (
        "What is a Treasury bill?",
        "",
        (
            "A Treasury bill is a short-term US government debt security maturing in one year or less. It is sold at a"
            " discount and repaid at face value."
        ),
    ),
    (
        "What is a junk bond?",
        "",
        (
            "A junk bond, or high-yield bond, is rated below investment grade. It pays higher interest to compensate"
            " for a greater risk of default."
        ),
    ),
    (
        "What is a credit rating?",
        "",
        (
            "A credit rating is an agency's assessment of a borrower's ability to repay its debt, such as AAA for the"
            " strongest issuers."
        ),
    ),
    (
        "What is a real estate investment trust?",
        "",
        (
            "A real estate investment trust (REIT) is a company that owns or finances income-producing property and"
            " must pay out most of its taxable income as dividends."
        ),
    ),
    (
        "What is the efficient market hypothesis?",
        "",
        (
            "The efficient market hypothesis says that prices reflect all available information, so consistently"
            " beating the market after costs is very hard."
        ),
    ),
    (
        "What is risk tolerance?",
        "",
        (
            "Risk tolerance is how much variation in investment returns, including losses, an investor is willing and"
            " able to accept."
        ),
    ),
    (
        "What is a capital gain?",
        "",
        (
            "A capital gain is the profit from selling an asset for more than its purchase price. It is taxed only when"
            " the asset is sold."
        ),
    ),
    (
        "What is the difference between short-term and long-term capital gains?",
        "",
        (
            "In the US, gains on assets held one year or less are short-term and taxed as ordinary income, while gains"
            " on assets held longer are long-term and taxed at lower rates."
        ),
    ),
    # personal finance
    (
        "What is an emergency fund?",
        "",
        (
            "An emergency fund is cash set aside for unexpected costs such as job loss or car repairs. A common"
            " guideline is three to six months of essential expenses."
        ),
    ),
    (
        "What is a budget?",
        "",
        "A budget is a plan that matches expected income with spending and saving over a period, usually a month.",
    ),
    (
        "What is the 50/30/20 budgeting rule?",
        "",
        (
            "The 50/30/20 rule puts 50% of after-tax income toward needs, 30% toward wants and 20% toward savings and"
            " debt repayment."
        ),
    ),
    (
        "What is a credit score?",
        "",
        (
            "A credit score is a number that summarizes a person's credit history and predicts how likely they are to"
            " repay debt. Higher scores get better loan terms."
        ),
    ),
    (
        "How can I improve my credit score?",
        "",
        (
            "Pay every bill on time, keep credit card balances low relative to their limits, and avoid opening many new"
            " accounts at once. Over time a longer clean history raises the score."
        ),
    ),
    (
        "What is credit utilization?",
        "",
        (
            "Credit utilization is the share of your available revolving credit that you are using. Keeping it below"
            " about 30% helps your credit score."
        ),
    ),
    (
        "What is APR?",
        "",
        (
            "APR, the annual percentage rate, is the yearly cost of borrowing including interest and certain fees,"
            " expressed as a percentage."
        ),
    ),
    (
        "What is the difference between APR and APY?",
        "",
        (
            "APR is the yearly rate without compounding, while APY includes the effect of compounding. For savings, APY"
            " shows what you actually earn in a year."
        ),
    ),
    (
        "What is compound interest?",
        "",
        (
            "Compound interest is interest earned on both the original principal and the interest already added. It"
            " makes savings grow faster over time."
        ),
    ),
    (
        "What is simple interest?",
        "",
        "Simple interest is calculated only on the original principal: principal times rate times time.",
    ),
    (
        "What is a fixed-rate mortgage?",
        "",
        (
            "A fixed-rate mortgage keeps the same interest rate for the whole loan term, so the principal and interest"
            " payment never changes."
        ),
    ),
    (
        "What is an adjustable-rate mortgage?",
        "",
        (
            "An adjustable-rate mortgage has an interest rate that resets periodically with a benchmark rate after an"
            " initial fixed period, so payments can rise or fall."
        ),
    ),
    (
        "What is a down payment?",
        "",
        "A down payment is the part of a purchase price paid upfront in cash, with the rest financed by a loan.",
    ),
    (
        "What is private mortgage insurance?",
        "",
        (
            "Private mortgage insurance (PMI) protects the lender when a borrower puts down less than 20% on a"
            " conventional mortgage. The borrower pays its premium."
        ),
    ),
    ("What is home equity?", "", "Home equity is the market value of a home minus the mortgage balance owed on it."),
    (
        "What is a 401(k)?",
        "",
        (
            "A 401(k) is a US employer-sponsored retirement plan that lets employees save part of their salary before"
            " tax, often with a matching contribution from the employer."
        ),
    ),
    (
        "What is an employer match in a retirement plan?",
        "",
        (
            "An employer match is money the employer adds to your retirement account based on your own contributions,"
            " such as 50 cents per dollar up to 6% of salary. It is effectively free money."
        ),
    ),
    (
        "What is the difference between a traditional IRA and a Roth IRA?",
        "",
        (
            "Traditional IRA contributions may be tax-deductible and withdrawals are taxed, while Roth IRA"
            " contributions are made after tax and qualified withdrawals are tax-free."
        ),
    ),
    (
        "What is a certificate of deposit?",
        "",
        (
            "A certificate of deposit (CD) is a bank deposit that pays a fixed interest rate for a fixed term."
            " Withdrawing early usually costs a penalty."
        ),
    ),
    (
        "What is a high-yield savings account?",
        "",
        (
            "A high-yield savings account is a savings account, often at an online bank, that pays a higher interest"
            " rate than a typical savings account."
        ),
    ),
    (
        "What is net worth?",
        "",
        "Net worth is everything you own minus everything you owe. It is a snapshot of your financial position.",
    ),
    (
        "What is the debt avalanche method?",
        "",
        (
            "The debt avalanche method pays minimums on all debts and puts extra money toward the debt with the highest"
            " interest rate first. It minimizes total interest paid."
        ),
    ),
    (
        "What is the debt snowball method?",
        "",
        (
            "The debt snowball method pays minimums on all debts and puts extra money toward the smallest balance"
            " first. Quick payoffs help motivation, though it may cost more interest."
        ),
    ),
    (
        "What is debt consolidation?",
        "",
        (
            "Debt consolidation combines several debts into one new loan, ideally at a lower interest rate and with a"
            " single monthly payment."
        ),
    ),
    (
        "What is a credit card grace period?",
        "",
        (
            "A grace period is the time between the end of a billing cycle and the due date during which no interest is"
            " charged if the full balance is paid."
        ),
    ),
    (
        "Why should you avoid paying only the minimum on a credit card?",
        "",
        (
            "Paying only the minimum leaves most of the balance accruing interest at a high rate, so the debt can take"
            " years to clear and cost far more than the original purchases."
        ),
    ),
    (
        "What is a sinking fund?",
        "",
        (
            "A sinking fund is money set aside regularly for a known future expense, such as car insurance or holiday"
            " gifts, so it does not strain a single month's budget."
        ),
    ),
    (
        "What is lifestyle inflation?",
        "",
        (
            "Lifestyle inflation is increasing spending as income rises, which can leave savings unchanged despite a"
            " higher salary."
        ),
    ),
    (
        "What is an annuity?",
        "",
        (
            "An annuity is a contract, usually with an insurer, that pays a stream of income for a set period or for"
            " life in exchange for a lump sum or series of payments."
        ),
    ),
    (
        "What is term life insurance?",
        "",
        (
            "Term life insurance pays a death benefit if the insured dies within a set term, such as 20 years. It has"
            " no cash value and is cheaper than permanent insurance."
        ),
    ),
    (
        "What is an insurance deductible?",
        "",
        "A deductible is the amount you pay out of pocket on a claim before the insurance company pays the rest.",
    ),
    (
        "What is an insurance premium?",
        "",
        "A premium is the amount paid, monthly or yearly, to keep an insurance policy active.",
    ),
    (
        "What is a tax deduction?",
        "",
        (
            "A tax deduction reduces taxable income. Its value depends on your tax bracket: a $1,000 deduction saves"
            " $220 at a 22% marginal rate."
        ),
    ),
    (
        "What is a tax credit?",
        "",
        "A tax credit reduces the tax owed dollar for dollar, so a $1,000 credit cuts the tax bill by $1,000.",
    ),
    (
        "What is a marginal tax rate?",
        "",
        (
            "The marginal tax rate is the rate applied to your next dollar of income. Under a progressive system only"
            " the income within each bracket is taxed at that bracket's rate."
        ),
    ),
    (
        "What is an effective tax rate?",
        "",
        (
            "The effective tax rate is total tax paid divided by total income. It is lower than the top marginal rate"
            " in a progressive system."
        ),
    ),
    (
        "What is gross income versus net income for a person?",
        "",
        (
            "Gross income is pay before taxes and deductions, while net income, or take-home pay, is what remains after"
            " them."
        ),
    ),
    # banking and economics
    (
        "What is inflation?",
        "",
        "Inflation is the general rise in prices over time, which reduces the purchasing power of money.",
    ),
    (
        "What is deflation?",
        "",
        (
            "Deflation is a general fall in prices. It can lead consumers to delay spending and make debts harder to"
            " repay."
        ),
    ),
    (
        "What is the consumer price index?",
        "",
        (
            "The consumer price index (CPI) measures the average change over time in prices paid by consumers for a"
            " basket of goods and services. It is a common gauge of inflation."
        ),
    ),
    (
        "What is a central bank?",
        "",
        (
            "A central bank, such as the Federal Reserve or the European Central Bank, manages a country's money supply"
            " and interest rates and supervises the banking system."
        ),
    ),
    (
        "What is monetary policy?",
        "",
        (
            "Monetary policy is a central bank's use of interest rates and other tools to control inflation and support"
            " employment and growth."
        ),
    ),
    (
        "What is fiscal policy?",
        "",
        "Fiscal policy is a government's use of taxes and spending to influence the economy.",
    ),
    (
        "What is quantitative easing?",
        "",
        (
            "Quantitative easing is a central bank buying large amounts of bonds to lower long-term interest rates and"
            " add money to the financial system."
        ),
    ),
    (
        "What is the federal funds rate?",
        "",
        (
            "The federal funds rate is the interest rate at which US banks lend reserves to each other overnight. The"
            " Federal Reserve sets a target range for it."
        ),
    ),
    (
        "What is a recession?",
        "",
        (
            "A recession is a significant, broad decline in economic activity lasting more than a few months, often"
            " described as two consecutive quarters of falling GDP."
        ),
    ),
    (
        "What is GDP?",
        "",
        (
            "Gross domestic product (GDP) is the total value of goods and services produced in a country in a period."
            " It is the main measure of economic output."
        ),
    ),
    (
        "What is the real interest rate?",
        "",
        "The real interest rate is the nominal rate minus inflation. It measures the actual gain in purchasing power.",
    ),
    (
        "What is a yield curve?",
        "",
        (
            "A yield curve plots interest rates of bonds with the same credit quality against their maturities. An"
            " inverted curve, with short rates above long rates, has often preceded recessions."
        ),
    ),
    (
        "What is fractional reserve banking?",
        "",
        (
            "Fractional reserve banking is a system in which banks keep only part of their deposits as reserves and"
            " lend out the rest."
        ),
    ),
    (
        "What is deposit insurance?",
        "",
        (
            "Deposit insurance protects bank customers' deposits up to a limit if the bank fails. In the US the FDIC"
            " covers up to $250,000 per depositor, per bank, per ownership category."
        ),
    ),
    (
        "What is an exchange rate?",
        "",
        "An exchange rate is the price of one currency in terms of another, such as 1 euro buying 1.10 US dollars.",
    ),
    (
        "What is a currency appreciation?",
        "",
        (
            "A currency appreciates when it buys more of other currencies than before. It makes imports cheaper and"
            " exports more expensive."
        ),
    ),
    (
        "What is collateral?",
        "",
        "Collateral is an asset a borrower pledges to secure a loan. The lender can seize it if the borrower defaults.",
    ),
    (
        "What is a secured loan?",
        "",
        (
            "A secured loan is backed by collateral, such as a house for a mortgage or a car for an auto loan, which"
            " usually gives it a lower interest rate."
        ),
    ),
    (
        "What is an unsecured loan?",
        "",
        (
            "An unsecured loan has no collateral, such as most credit cards and personal loans. Lenders rely on"
            " creditworthiness and charge higher rates."
        ),
    ),
    (
        "What is default on a loan?",
        "",
        (
            "Default is the failure to repay a loan according to its terms, such as missing required payments. It"
            " damages credit and can lead to collection or loss of collateral."
        ),
    ),
    (
        "What is a line of credit?",
        "",
        "A line of credit lets a borrower draw money as needed up to a limit and pay interest only on the amount used.",
    ),
    (
        "What is opportunity cost?",
        "",
        (
            "Opportunity cost is the value of the best alternative given up when making a choice, such as the return"
            " money could have earned elsewhere."
        ),
    ),
    (
        "What is a sunk cost?",
        "",
        "A sunk cost is money already spent that cannot be recovered. It should not influence future decisions.",
    ),
    (
        "What is a fixed cost?",
        "",
        "A fixed cost stays the same regardless of output in the short run, such as rent or insurance.",
    ),
    (
        "What is a variable cost?",
        "",
        "A variable cost changes with the level of output, such as raw materials or sales commissions.",
    ),
    (
        "What is the break-even point?",
        "",
        (
            "The break-even point is the level of sales at which total revenue equals total costs, so profit is zero."
            " It equals fixed costs divided by the contribution margin per unit."
        ),
    ),
    (
        "What is a contribution margin?",
        "",
        (
            "Contribution margin is the selling price per unit minus variable cost per unit. It is what each sale"
            " contributes toward fixed costs and profit."
        ),
    ),
    (
        "What is liquidity for a company?",
        "",
        (
            "A company's liquidity is its ability to meet short-term obligations with cash or assets that convert to"
            " cash quickly. The current and quick ratios measure it."
        ),
    ),
    (
        "What is solvency?",
        "",
        (
            "Solvency is a company's ability to meet its long-term obligations. A solvent company's assets exceed its "
            "liabilities."
        ),
    ),
    (
        "What is bankruptcy?",
        "",
        (
            "Bankruptcy is a legal process for people or companies that cannot repay their debts, leading to"
            " reorganization or liquidation under court supervision."
        ),
    ),
    (
        "What is venture capital?",
        "",
        (
            "Venture capital is equity financing from investors to young, high-growth companies in exchange for"
            " ownership stakes."
        ),
    ),
    (
        "What is private equity?",
        "",
        (
            "Private equity is investment in companies that are not publicly traded, often buying whole companies to"
            " improve and later sell them."
        ),
    ),
    (
        "What is a hedge fund?",
        "",
        (
            "A hedge fund is a pooled investment fund for wealthy or institutional investors that uses flexible"
            " strategies, including leverage and short selling."
        ),
    ),
    (
        "What is a prospectus?",
        "",
        (
            "A prospectus is a legal document describing a security offering, including the business, risks and terms,"
            " filed with regulators."
        ),
    ),
    (
        "What is an annual report?",
        "",
        (
            "An annual report is a company's yearly document for shareholders with its audited financial statements and"
            " a discussion of results."
        ),
    ),
    (
        "What is a 10-K filing?",
        "",
        (
            "A 10-K is the detailed annual report that US public companies file with the SEC, including audited"
            " financial statements and risk factors."
        ),
    ),
    # questions with context in `input`
    (
        "Classify this cost as fixed or variable.",
        "Monthly rent for a retail store.",
        "Fixed cost: the rent stays the same regardless of how much the store sells.",
    ),
    (
        "Classify this cost as fixed or variable.",
        "Flour used by a bakery.",
        "Variable cost: the amount of flour rises and falls with the number of loaves baked.",
    ),
    (
        "Classify this cost as fixed or variable.",
        "Sales commissions paid at 5% of each sale.",
        "Variable cost: commissions grow in proportion to sales.",
    ),
    (
        "Classify this cost as fixed or variable.",
        "Annual insurance premium on a factory building.",
        "Fixed cost: the premium does not depend on production volume.",
    ),
    (
        "Is this item an asset, a liability or equity?",
        "A bank loan the company must repay in three years.",
        "It is a liability: a long-term obligation to repay the bank.",
    ),
    (
        "Is this item an asset, a liability or equity?",
        "Delivery trucks owned by the company.",
        "It is an asset, specifically property, plant and equipment.",
    ),
    (
        "Is this item an asset, a liability or equity?",
        "Money invested by the owners in exchange for shares.",
        "It is equity, recorded as share capital.",
    ),
    (
        "Is this item an asset, a liability or equity?",
        "Wages earned by employees but not yet paid.",
        "It is a liability, recorded as accrued wages.",
    ),
    (
        "Is this item an asset, a liability or equity?",
        "Cash held in the company's checking account.",
        "It is an asset, a current asset in cash and cash equivalents.",
    ),
    (
        "In which section of the cash flow statement does this belong?",
        "Purchase of new manufacturing equipment.",
        "Investing activities, because it is spending on a long-term asset.",
    ),
    (
        "In which section of the cash flow statement does this belong?",
        "Payment of a dividend to shareholders.",
        "Financing activities, because it is a distribution to the company's owners.",
    ),
    (
        "In which section of the cash flow statement does this belong?",
        "Cash received from customers for sales.",
        "Operating activities, because it comes from the company's core business.",
    ),
    (
        "In which section of the cash flow statement does this belong?",
        "Proceeds from issuing new bonds.",
        "Financing activities, because it is money raised from lenders.",
    ),
    (
        "Is this expense tax-deductible for a typical small business?",
        "Office supplies used in the business.",
        "Yes. Ordinary and necessary business expenses such as office supplies are generally deductible.",
    ),
    (
        "Which is the better deal for a saver?",
        "Account A pays 4.0% APR compounded monthly; account B pays 4.05% APY.",
        "Account A. Its APY is (1 + 0.04/12)^12 - 1 = 4.07%, slightly more than account B's 4.05%.",
    ),
    (
        "Explain what this means for the bond's price.",
        "A bond has a 3% coupon and market rates for similar bonds are 5%.",
        (
            "The bond will trade below its face value, at a discount, because buyers need a lower price to earn the 5%"
            " market yield from a 3% coupon."
        ),
    ),
    (
        "Explain what this means for the bond's price.",
        "A bond has a 6% coupon and market rates for similar bonds are 4%.",
        "The bond will trade above its face value, at a premium, because its coupon is higher than what new bonds pay.",
    ),
    (
        "What does this ratio suggest?",
        "A company's current ratio is 0.7.",
        (
            "Its current liabilities exceed its current assets, so it may struggle to pay short-term obligations"
            " without new financing or faster collections."
        ),
    ),
    (
        "What does this ratio suggest?",
        "A company's debt-to-equity ratio is 3.5.",
        "The company is highly leveraged, financing far more with debt than equity, which raises its financial risk.",
    ),
    (
        "What does this ratio suggest?",
        "A company's interest coverage ratio is 12.",
        "It earns 12 times its interest expense, so it can comfortably service its debt.",
    ),
    (
        "Summarize the risk in one sentence.",
        "An investor keeps 90% of her retirement savings in her employer's stock.",
        "She is heavily concentrated: if the employer struggles she could lose both her job and most of her savings.",
    ),
    (
        "Which debt should be paid off first under the avalanche method?",
        "Credit card at 24% APR with $3,000; car loan at 6% with $9,000; student loan at 4.5% with $15,000.",
        "The credit card at 24% APR, because the avalanche method targets the highest interest rate first.",
    ),
    (
        "Which debt should be paid off first under the snowball method?",
        "Credit card at 24% APR with $3,000; medical bill at 0% with $800; car loan at 6% with $9,000.",
        "The $800 medical bill, because the snowball method targets the smallest balance first.",
    ),
]

# (name, needs) -> builds (instruction, input, output) from rng; every number in an answer is computed here
MONEY_UNITS = [1000, 5000, 10000, 25000, 50000]


def money(x):
    if abs(x - round(x)) < 0.005:
        return f"${round(x):,}"
    return f"${x:,.2f}"


def pct(x, digits=1):
    text = f"{x * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def num(x, digits=2):
    text = f"{x:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def amount(rng, lo, hi, step=1000):
    return rng.randrange(lo // step, hi // step + 1) * step


def calc_net_margin(rng, with_input):
    revenue = amount(rng, 200000, 5000000, 10000)
    income = round(revenue * rng.uniform(0.02, 0.25), -3)
    answer = f"Net profit margin = net income / revenue = {money(income)} / {money(revenue)} = {pct(income / revenue)}."
    if with_input:
        return ("Calculate the net profit margin.", f"Revenue: {money(revenue)}. Net income: {money(income)}.", answer)
    return (
        (
            f"A company earned net income of {money(income)} on revenue of {money(revenue)}. What is its net profit "
            "margin?"
        ),
        "",
        answer,
    )


def calc_gross_margin(rng, with_input):
    revenue = amount(rng, 100000, 3000000, 10000)
    cogs = round(revenue * rng.uniform(0.3, 0.8), -3)
    gross = revenue - cogs
    answer = (
        f"Gross profit = {money(revenue)} - {money(cogs)} = {money(gross)}, so gross margin = {money(gross)} / "
        f"{money(revenue)} = {pct(gross / revenue)}."
    )
    if with_input:
        return ("What is the gross margin?", f"Revenue: {money(revenue)}. Cost of goods sold: {money(cogs)}.", answer)
    return (
        f"A retailer had sales of {money(revenue)} and cost of goods sold of {money(cogs)}. What is its gross margin?",
        "",
        answer,
    )


def calc_current_ratio(rng, with_input):
    liabilities = amount(rng, 50000, 900000, 5000)
    assets = round(liabilities * rng.choice([0.8, 1.2, 1.5, 1.8, 2.0, 2.5]), -3)
    ratio = assets / liabilities
    answer = (
        f"Current ratio = current assets / current liabilities = {money(assets)} / {money(liabilities)} = {num(ratio)}."
    )
    if with_input:
        return (
            "Compute the current ratio.",
            f"Current assets: {money(assets)}. Current liabilities: {money(liabilities)}.",
            answer,
        )
    return (
        (
            f"A firm has current assets of {money(assets)} and current liabilities of {money(liabilities)}. What is its"
            " current ratio?"
        ),
        "",
        answer,
    )


def calc_quick_ratio(rng, with_input):
    liabilities = amount(rng, 100000, 800000, 5000)
    inventory = amount(rng, 20000, 300000, 5000)
    current = liabilities + inventory + amount(rng, -50000, 300000, 5000)
    ratio = (current - inventory) / liabilities
    answer = (
        f"Quick ratio = (current assets - inventory) / current liabilities = ({money(current)} - {money(inventory)}) "
        f"/ {money(liabilities)} = {num(ratio)}."
    )
    if with_input:
        return (
            "Calculate the quick ratio.",
            (
                f"Current assets: {money(current)}. Inventory: {money(inventory)}. Current "
                f"liabilities: {money(liabilities)}."
            ),
            answer,
        )
    return (
        (
            f"A company reports current assets of {money(current)}, of which {money(inventory)} is inventory, and"
            f" current liabilities of {money(liabilities)}. What is its quick ratio?"
        ),
        "",
        answer,
    )


def calc_debt_to_equity(rng, with_input):
    equity = amount(rng, 200000, 5000000, 10000)
    debt = round(equity * rng.uniform(0.2, 2.5), -4)
    answer = (
        f"Debt-to-equity = total debt / shareholders' equity = {money(debt)} / {money(equity)} = {num(debt / equity)}."
    )
    if with_input:
        return (
            "What is the debt-to-equity ratio?",
            f"Total debt: {money(debt)}. Shareholders' equity: {money(equity)}.",
            answer,
        )
    return (
        (
            f"A company has {money(debt)} of debt and {money(equity)} of shareholders' equity. What is its"
            " debt-to-equity ratio?"
        ),
        "",
        answer,
    )


def calc_roe(rng, with_input):
    equity = amount(rng, 500000, 8000000, 10000)
    income = round(equity * rng.uniform(0.04, 0.3), -3)
    answer = (
        f"Return on equity = net income / shareholders' equity = {money(income)} / {money(equity)} ="
        f" {pct(income / equity)}."
    )
    if with_input:
        return (
            "Calculate the return on equity.",
            f"Net income: {money(income)}. Shareholders' equity: {money(equity)}.",
            answer,
        )
    return (
        (
            f"What is the return on equity of a company with net income of {money(income)} and shareholders' equity of "
            f"{money(equity)}?"
        ),
        "",
        answer,
    )


def calc_roa(rng, with_input):
    assets = amount(rng, 1000000, 20000000, 50000)
    income = round(assets * rng.uniform(0.01, 0.15), -3)
    answer = (
        f"Return on assets = net income / total assets = {money(income)} / {money(assets)} = {pct(income / assets)}."
    )
    if with_input:
        return ("Find the return on assets.", f"Net income: {money(income)}. Total assets: {money(assets)}.", answer)
    return (
        f"A business earned {money(income)} with total assets of {money(assets)}. What is its return on assets?",
        "",
        answer,
    )


def calc_eps(rng, with_input):
    shares = rng.choice([500000, 1000000, 2000000, 4000000, 10000000])
    income = amount(rng, 200000, 30000000, 10000)
    eps = income / shares
    answer = f"EPS = net income / shares outstanding = {money(income)} / {shares:,} = {money(eps)} per share."
    if with_input:
        return ("Compute earnings per share.", f"Net income: {money(income)}. Shares outstanding: {shares:,}.", answer)
    return (
        f"A company earned {money(income)} and has {shares:,} shares outstanding. What are its earnings per share?",
        "",
        answer,
    )


def calc_pe(rng, with_input):
    eps = round(rng.uniform(0.5, 12.0), 2)
    price = round(eps * rng.uniform(6, 40), 2)
    answer = f"P/E ratio = share price / EPS = {money(price)} / {money(eps)} = {num(price / eps, 1)}."
    if with_input:
        return (
            "What is the price-to-earnings ratio?",
            f"Share price: {money(price)}. Earnings per share: {money(eps)}.",
            answer,
        )
    return (
        f"A stock trades at {money(price)} and its earnings per share are {money(eps)}. What is its P/E ratio?",
        "",
        answer,
    )


def calc_dividend_yield(rng, with_input):
    price = round(rng.uniform(10, 250), 2)
    dividend = round(price * rng.uniform(0.005, 0.07), 2)
    answer = (
        f"Dividend yield = annual dividend / share price = {money(dividend)} / {money(price)} ="
        f" {pct(dividend / price, 2)}."
    )
    if with_input:
        return (
            "Calculate the dividend yield.",
            f"Annual dividend per share: {money(dividend)}. Share price: {money(price)}.",
            answer,
        )
    return (
        (
            f"A stock priced at {money(price)} pays an annual dividend of {money(dividend)} per share. What is its "
            "dividend yield?"
        ),
        "",
        answer,
    )


def calc_simple_interest(rng, with_input):
    principal = rng.choice(MONEY_UNITS) * rng.randint(1, 4)
    rate = rng.choice([0.02, 0.03, 0.035, 0.04, 0.05, 0.06, 0.075])
    years = rng.randint(2, 8)
    interest = principal * rate * years
    answer = (
        f"Simple interest = principal x rate x time = {money(principal)} x {pct(rate)} x {years} = {money(interest)}."
    )
    if with_input:
        return (
            "How much simple interest is earned?",
            f"Principal: {money(principal)}. Rate: {pct(rate)} per year. Time: {years} years.",
            answer,
        )
    return (
        f"How much simple interest does {money(principal)} earn at {pct(rate)} a year for {years} years?",
        "",
        answer,
    )


def calc_compound(rng, with_input):
    principal = rng.choice(MONEY_UNITS) * rng.randint(1, 3)
    rate = rng.choice([0.03, 0.04, 0.05, 0.06, 0.07, 0.08])
    years = rng.choice([5, 10, 15, 20])
    value = principal * (1 + rate) ** years
    answer = (
        f"Future value = {money(principal)} x (1 + {num(rate, 2)})^{years} = {money(round(value, 2))}, compounding "
        "once a year."
    )
    if with_input:
        return (
            "What will the investment be worth?",
            f"{money(principal)} invested at {pct(rate)} compounded annually for {years} years.",
            answer,
        )
    return (
        (
            f"If you invest {money(principal)} at {pct(rate)} compounded annually, how much will you have after {years}"
            " years?"
        ),
        "",
        answer,
    )


def calc_present_value(rng, with_input):
    future = rng.choice([10000, 20000, 50000, 100000])
    rate = rng.choice([0.03, 0.04, 0.05, 0.06, 0.08])
    years = rng.choice([3, 5, 10])
    value = future / (1 + rate) ** years
    answer = f"Present value = {money(future)} / (1 + {num(rate, 2)})^{years} = {money(round(value, 2))}."
    if with_input:
        return (
            "Find the present value.",
            f"{money(future)} received in {years} years, discounted at {pct(rate)} a year.",
            answer,
        )
    return (
        f"What is the present value of {money(future)} received in {years} years if the discount rate is {pct(rate)}?",
        "",
        answer,
    )


def calc_cagr(rng, with_input):
    start = amount(rng, 10000, 500000, 1000)
    years = rng.choice([3, 4, 5, 8, 10])
    growth = rng.uniform(0.02, 0.2)
    end = round(start * (1 + growth) ** years, -2)
    cagr = (end / start) ** (1 / years) - 1
    answer = f"CAGR = ({money(end)} / {money(start)})^(1/{years}) - 1 = {pct(cagr, 2)} per year."
    if with_input:
        return (
            "Calculate the compound annual growth rate.",
            f"Starting value: {money(start)}. Ending value: {money(end)}. Period: {years} years.",
            answer,
        )
    return (
        (
            f"An investment grew from {money(start)} to {money(end)} over {years} years. What was its compound annual "
            "growth rate?"
        ),
        "",
        answer,
    )


def calc_percent_change(rng, with_input):
    old = amount(rng, 50000, 2000000, 1000)
    new = round(old * rng.uniform(0.6, 1.6), -3)
    change = (new - old) / old
    direction = "increase" if change >= 0 else "decrease"
    answer = (
        f"Change = ({money(new)} - {money(old)}) / {money(old)} = {pct(change)}, a {direction} of {pct(abs(change))}."
    )
    if with_input:
        return (
            "What is the percentage change in revenue?",
            f"Last year: {money(old)}. This year: {money(new)}.",
            answer,
        )
    return (
        f"Revenue went from {money(old)} last year to {money(new)} this year. What is the percentage change?",
        "",
        answer,
    )


def calc_break_even(rng, with_input):
    fixed = amount(rng, 20000, 400000, 5000)
    price = rng.choice([20, 25, 40, 50, 80, 120, 200])
    variable = round(price * rng.choice([0.4, 0.5, 0.6, 0.7, 0.75]))
    units = math.ceil(fixed / (price - variable))
    answer = (
        f"Break-even units = fixed costs / (price - variable cost) = {money(fixed)} / ({money(price)} - "
        f"{money(variable)}) = {fixed / (price - variable):,.1f}, so about {units:,} units."
    )
    if with_input:
        return (
            "How many units must be sold to break even?",
            f"Fixed costs: {money(fixed)}. Price per unit: {money(price)}. Variable cost per unit: {money(variable)}.",
            answer,
        )
    return (
        (
            f"A product sells for {money(price)} with a variable cost of {money(variable)} per unit, and fixed costs"
            f" are {money(fixed)}. What is the break-even point in units?"
        ),
        "",
        answer,
    )


def calc_loan_payment(rng, with_input):
    principal = rng.choice([10000, 15000, 20000, 25000, 30000, 200000, 300000])
    rate = rng.choice([0.04, 0.05, 0.06, 0.065, 0.07])
    years = 30 if principal >= 100000 else rng.choice([3, 4, 5])
    r, n = rate / 12, years * 12
    payment = principal * r / (1 - (1 + r) ** -n)
    answer = (
        f"Monthly payment = P x r / (1 - (1 + r)^-n) with P = {money(principal)}, r = {pct(rate)}/12 and n = {n}, "
        f"which gives {money(round(payment, 2))}."
    )
    if with_input:
        return (
            "Calculate the monthly loan payment.",
            f"Loan: {money(principal)}. Annual rate: {pct(rate)}. Term: {years} years, monthly payments.",
            answer,
        )
    return (
        f"What is the monthly payment on a {money(principal)} loan at {pct(rate)} annual interest over {years} years?",
        "",
        answer,
    )


def calc_rule_of_72(rng, with_input):
    rate = rng.choice([3, 4, 6, 8, 9, 12])
    years = 72 / rate
    answer = f"By the rule of 72, it takes about 72 / {rate} = {num(years, 1)} years to double."
    if with_input:
        return ("Estimate the doubling time with the rule of 72.", f"Annual return: {rate}%.", answer)
    return (f"Roughly how long does it take money to double at {rate}% a year?", "", answer)


def calc_inventory_turnover(rng, with_input):
    inventory = amount(rng, 50000, 800000, 5000)
    cogs = round(inventory * rng.uniform(2, 12), -3)
    turns = cogs / inventory
    answer = (
        f"Inventory turnover = COGS / average inventory = {money(cogs)} / {money(inventory)} = {num(turns, 1)} times, "
        f"or about {round(365 / turns)} days of inventory."
    )
    if with_input:
        return (
            "Calculate inventory turnover.",
            f"Cost of goods sold: {money(cogs)}. Average inventory: {money(inventory)}.",
            answer,
        )
    return (
        (
            f"A store's cost of goods sold was {money(cogs)} and its average inventory {money(inventory)}. What is its "
            "inventory turnover?"
        ),
        "",
        answer,
    )


def calc_interest_coverage(rng, with_input):
    interest = amount(rng, 10000, 500000, 1000)
    ebit = round(interest * rng.uniform(1.2, 15), -3)
    answer = (
        f"Interest coverage = EBIT / interest expense = {money(ebit)} / {money(interest)} = {num(ebit / interest, 1)}."
    )
    if with_input:
        return (
            "What is the interest coverage ratio?",
            f"EBIT: {money(ebit)}. Interest expense: {money(interest)}.",
            answer,
        )
    return (
        (
            f"A company's operating income (EBIT) is {money(ebit)} and its interest expense is {money(interest)}. What"
            " is its interest coverage ratio?"
        ),
        "",
        answer,
    )


def calc_depreciation(rng, with_input):
    cost = amount(rng, 10000, 500000, 1000)
    salvage = round(cost * rng.choice([0, 0.05, 0.1, 0.2]), -2)
    life = rng.choice([3, 4, 5, 8, 10])
    annual = (cost - salvage) / life
    answer = (
        f"Straight-line depreciation = (cost - salvage value) / useful life = ({money(cost)} - {money(salvage)}) / "
        f"{life} = {money(round(annual, 2))} per year."
    )
    if with_input:
        return (
            "Calculate the annual straight-line depreciation.",
            f"Cost: {money(cost)}. Salvage value: {money(salvage)}. Useful life: {life} years.",
            answer,
        )
    return (
        (
            f"A machine costs {money(cost)}, has a salvage value of {money(salvage)} and a useful life of {life} years."
            " What is its annual straight-line depreciation?"
        ),
        "",
        answer,
    )


def calc_payback(rng, with_input):
    cost = amount(rng, 20000, 1000000, 5000)
    inflow = round(cost / rng.uniform(2, 8), -3)
    answer = (
        f"Payback period = initial cost / annual cash inflow = {money(cost)} / {money(inflow)} ="
        f" {num(cost / inflow, 1)} years."
    )
    if with_input:
        return (
            "What is the payback period?",
            f"Initial investment: {money(cost)}. Annual cash inflow: {money(inflow)}.",
            answer,
        )
    return (
        f"A project costs {money(cost)} and returns {money(inflow)} in cash each year. What is its payback period?",
        "",
        answer,
    )


def calc_npv(rng, with_input):
    cost = amount(rng, 10000, 200000, 1000)
    flows = [round(cost * rng.uniform(0.25, 0.5), -2) for _ in range(3)]
    rate = rng.choice([0.05, 0.08, 0.1, 0.12])
    pv = sum(cf / (1 + rate) ** (t + 1) for t, cf in enumerate(flows))
    npv = pv - cost
    answer = (
        f"NPV = {' + '.join(f'{money(cf)}/{num(1 + rate, 2)}^{t + 1}' for t, cf in enumerate(flows))} - "
        f"{money(cost)} = {money(round(pv, 2))} - {money(cost)} = {'-' if npv < 0 else ''}{money(round(abs(npv), 2))}."
    )
    flows_text = ", ".join(money(cf) for cf in flows)
    if with_input:
        return (
            "Calculate the net present value.",
            f"Initial cost: {money(cost)}. Cash flows for years 1-3: {flows_text}. Discount rate: {pct(rate)}.",
            answer,
        )
    return (
        (
            f"A project costs {money(cost)} today and returns {flows_text} over the next three years. What is its NPV"
            f" at a discount rate of {pct(rate)}?"
        ),
        "",
        answer,
    )


def calc_working_capital(rng, with_input):
    current_assets = amount(rng, 100000, 3000000, 5000)
    current_liabilities = round(current_assets * rng.uniform(0.4, 1.3), -3)
    wc = current_assets - current_liabilities
    sign = "-" if wc < 0 else ""
    answer = (
        f"Working capital = current assets - current liabilities = {money(current_assets)} - "
        f"{money(current_liabilities)} = {sign}{money(abs(wc))}."
    )
    if with_input:
        return (
            "What is the working capital?",
            f"Current assets: {money(current_assets)}. Current liabilities: {money(current_liabilities)}.",
            answer,
        )
    return (
        (
            f"What is the working capital of a company with current assets of {money(current_assets)} and current "
            f"liabilities of {money(current_liabilities)}?"
        ),
        "",
        answer,
    )


def calc_market_cap(rng, with_input):
    shares = rng.choice([5, 12, 40, 150, 800]) * 1000000
    price = round(rng.uniform(5, 300), 2)
    cap = shares * price
    answer = (
        f"Market capitalization = share price x shares outstanding = {money(price)} x {shares:,} = {money(round(cap))}."
    )
    if with_input:
        return (
            "Calculate the market capitalization.",
            f"Share price: {money(price)}. Shares outstanding: {shares:,}.",
            answer,
        )
    return (
        f"A company has {shares:,} shares outstanding trading at {money(price)}. What is its market capitalization?",
        "",
        answer,
    )


def calc_real_return(rng, with_input):
    nominal = rng.choice([0.04, 0.05, 0.06, 0.07, 0.08, 0.1])
    inflation = rng.choice([0.02, 0.025, 0.03, 0.04])
    real = (1 + nominal) / (1 + inflation) - 1
    answer = (
        f"Real return = (1 + {pct(nominal)}) / (1 + {pct(inflation)}) - 1 = {pct(real, 2)}, close to the "
        f"approximation {pct(nominal)} - {pct(inflation)} = {pct(nominal - inflation)}."
    )
    if with_input:
        return (
            "What is the real rate of return?",
            f"Nominal return: {pct(nominal)}. Inflation: {pct(inflation)}.",
            answer,
        )
    return (
        (
            f"An investment returned {pct(nominal)} in a year when inflation was {pct(inflation)}. What was the real "
            "return?"
        ),
        "",
        answer,
    )


def calc_savings_rate(rng, with_input):
    income = rng.choice([3000, 3500, 4200, 5000, 6000, 7500])
    saved = round(income * rng.uniform(0.05, 0.3), -1)
    answer = f"Savings rate = amount saved / income = {money(saved)} / {money(income)} = {pct(saved / income)}."
    if with_input:
        return (
            "What is my savings rate?",
            f"Monthly take-home pay: {money(income)}. Amount saved each month: {money(saved)}.",
            answer,
        )
    return (f"If you take home {money(income)} a month and save {money(saved)}, what is your savings rate?", "", answer)


def calc_dti(rng, with_input):
    gross = rng.choice([4000, 5000, 6000, 7500, 9000])
    debt = round(gross * rng.uniform(0.1, 0.5), -1)
    ratio = debt / gross
    verdict = "within" if ratio <= 0.36 else "above"
    answer = (
        f"Debt-to-income ratio = monthly debt payments / gross monthly income = {money(debt)} / {money(gross)} = "
        f"{pct(ratio)}, which is {verdict} the common 36% guideline."
    )
    if with_input:
        return (
            "Calculate the debt-to-income ratio.",
            f"Gross monthly income: {money(gross)}. Monthly debt payments: {money(debt)}.",
            answer,
        )
    return (
        (
            f"A borrower earns {money(gross)} a month before tax and pays {money(debt)} a month on debts. What is the "
            "debt-to-income ratio?"
        ),
        "",
        answer,
    )


def calc_emergency_fund(rng, with_input):
    expenses = rng.choice([1800, 2200, 2500, 3000, 3600, 4000])
    months = rng.choice([3, 6])
    answer = f"{months} months x {money(expenses)} = {money(months * expenses)}."
    if with_input:
        return (
            "How large should the emergency fund be?",
            f"Essential monthly expenses: {money(expenses)}. Target: {months} months of expenses.",
            answer,
        )
    return (
        f"How much should be in an emergency fund that covers {months} months of {money(expenses)} monthly expenses?",
        "",
        answer,
    )


def calc_net_worth(rng, with_input):
    home = amount(rng, 150000, 600000, 5000)
    savings = amount(rng, 5000, 150000, 1000)
    mortgage = round(home * rng.uniform(0.3, 0.9), -3)
    other = amount(rng, 0, 40000, 1000)
    worth = home + savings - mortgage - other
    sign = "-" if worth < 0 else ""
    answer = (
        f"Net worth = assets - liabilities = ({money(home)} + {money(savings)}) - ({money(mortgage)} + "
        f"{money(other)}) = {sign}{money(abs(worth))}."
    )
    if with_input:
        return (
            "Calculate the net worth.",
            (
                f"Home value: {money(home)}. Savings: {money(savings)}. Mortgage balance: "
                f"{money(mortgage)}. Car loan: {money(other)}."
            ),
            answer,
        )
    return (
        (
            f"Someone owns a home worth {money(home)} and has {money(savings)} in savings, with a {money(mortgage)} "
            f"mortgage and a {money(other)} car loan. What is their net worth?"
        ),
        "",
        answer,
    )


def calc_capital_gain(rng, with_input):
    shares = rng.choice([10, 25, 50, 100, 200])
    buy = round(rng.uniform(10, 200), 2)
    sell = round(buy * rng.uniform(0.6, 1.8), 2)
    gain = shares * (sell - buy)
    label = "gain" if gain >= 0 else "loss"
    answer = (
        f"Capital {label} = {shares} x ({money(sell)} - {money(buy)}) = {'-' if gain < 0 else ''}"
        f"{money(round(abs(gain), 2))}."
    )
    if with_input:
        return (
            "What is the capital gain or loss?",
            f"Bought {shares} shares at {money(buy)}; sold them at {money(sell)}.",
            answer,
        )
    return (
        (
            f"You bought {shares} shares at {money(buy)} and sold them at {money(sell)}. What is your capital gain or "
            "loss?"
        ),
        "",
        answer,
    )


def calc_bond_coupon(rng, with_input):
    face = rng.choice([1000, 5000, 10000])
    rate = rng.choice([0.025, 0.03, 0.04, 0.045, 0.05, 0.06])
    annual = face * rate
    answer = (
        f"Annual coupon = face value x coupon rate = {money(face)} x {pct(rate)} = {money(annual)}, or"
        f" {money(annual / 2)} every six months."
    )
    if with_input:
        return (
            "How much interest does the bond pay?",
            f"Face value: {money(face)}. Coupon rate: {pct(rate)}, paid semiannually.",
            answer,
        )
    return (
        f"A {money(face)} bond has a {pct(rate)} coupon paid semiannually. How much does it pay in interest?",
        "",
        answer,
    )


def calc_apy(rng, with_input):
    apr = rng.choice([0.02, 0.03, 0.04, 0.045, 0.05])
    apy = (1 + apr / 12) ** 12 - 1
    answer = f"APY = (1 + {pct(apr)}/12)^12 - 1 = {pct(apy, 2)}."
    if with_input:
        return ("Convert the APR to APY.", f"APR: {pct(apr)}, compounded monthly.", answer)
    return (f"What is the APY of a savings account paying {pct(apr)} APR compounded monthly?", "", answer)


CALCULATIONS = [
    calc_net_margin,
    calc_gross_margin,
    calc_current_ratio,
    calc_quick_ratio,
    calc_debt_to_equity,
    calc_roe,
    calc_roa,
    calc_eps,
    calc_pe,
    calc_dividend_yield,
    calc_simple_interest,
    calc_compound,
    calc_present_value,
    calc_cagr,
    calc_percent_change,
    calc_break_even,
    calc_loan_payment,
    calc_rule_of_72,
    calc_inventory_turnover,
    calc_interest_coverage,
    calc_depreciation,
    calc_payback,
    calc_npv,
    calc_working_capital,
    calc_market_cap,
    calc_real_return,
    calc_savings_rate,
    calc_dti,
    calc_emergency_fund,
    calc_net_worth,
    calc_capital_gain,
    calc_bond_coupon,
    calc_apy,
]


def write_json(path, records):
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as f:
        json.dump(records, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def main():
    rng = random.Random(SEED)
    records = [{"instruction": q, "input": i, "output": a} for q, i, a in CONCEPTS]
    seen = {(r["instruction"], r["input"]) for r in records}
    # five instances per calculation: mixed question-only and input-context forms with different numbers
    for builder in CALCULATIONS:
        made = 0
        while made < 5:
            q, i, a = builder(rng, with_input=made % 2 == 1)
            if (q, i) not in seen:
                seen.add((q, i))
                records.append({"instruction": q, "input": i, "output": a})
                made += 1
    rng.shuffle(records)
    test, train = records[:N_TEST], records[N_TEST:]
    write_json(HERE / "train.json", train)
    write_json(HERE / "test.json", test)
    print(
        f"wrote {len(train)} train and {len(test)} test records ({len(CONCEPTS)} written, "
        f"{len(records) - len(CONCEPTS)} computed)"
    )


if __name__ == "__main__":
    main()
